FROM alpine:3.20

LABEL maintainer="ops@example.com" \
      org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="Small tools image"

ARG TOOLS_VERSION=2.4.1
ENV TOOLS_HOME=/opt/tools \
    PATH=/opt/tools/bin:$PATH

RUN apk add --no-cache --virtual .build-deps \
        build-base \
        curl \
        git \
        linux-headers \
    && apk add --no-cache ca-certificates tini su-exec \
    && curl -fsSL -o /tmp/tools.tar.gz "https://example.com/tools/v${TOOLS_VERSION}/tools-${TOOLS_VERSION}.tar.gz" \
    && echo "4b825dc642cb6eb9a060e54bf8d69288fbee4904  /tmp/tools.tar.gz" | sha1sum -c - \
    && mkdir -p "$TOOLS_HOME" \
    && tar -xzf /tmp/tools.tar.gz -C "$TOOLS_HOME" --strip-components=1 \
    && make -C "$TOOLS_HOME" install \
    && apk del .build-deps \
    && rm -rf /tmp/* /var/cache/apk/*

RUN addgroup -S tools && adduser -S -G tools -h /home/tools tools
USER tools
WORKDIR /home/tools
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["tools", "--help"]
