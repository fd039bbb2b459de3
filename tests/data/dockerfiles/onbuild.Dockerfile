FROM node:20-bookworm-slim

RUN mkdir -p /usr/src/app
WORKDIR /usr/src/app

ONBUILD ARG NODE_ENV
ONBUILD ENV NODE_ENV $NODE_ENV
ONBUILD COPY package.json package-lock.json* /usr/src/app/
ONBUILD RUN npm ci --omit=dev && npm cache clean --force
onbuild copy --chown=node:node . /usr/src/app

USER node
CMD [ "npm", "start" ]
