ARG REGISTRY=docker.io
ARG BASE_IMAGE=${REGISTRY}/library/eclipse-temurin:21-jre
ARG BUILDER_IMAGE=maven:3.9-eclipse-temurin-21
ARG APP_VERSION

FROM ${BUILDER_IMAGE} AS builder
ARG APP_VERSION
WORKDIR /build
COPY pom.xml .
RUN --mount=type=cache,target=/root/.m2 mvn -B -q dependency:go-offline
COPY src ./src
RUN --mount=type=cache,target=/root/.m2 \
    mvn -B -q package -DskipTests -Drevision=${APP_VERSION:-0.0.0-SNAPSHOT} \
 && cp target/*.jar /build/app.jar

FROM ${BASE_IMAGE}
ARG APP_VERSION
LABEL org.opencontainers.image.version=${APP_VERSION}
RUN groupadd -r spring && useradd -r -g spring spring
COPY --from=builder --chown=spring:spring /build/app.jar /app/app.jar
USER spring:spring
ENTRYPOINT ["java", "-XX:MaxRAMPercentage=75", "-jar", "/app/app.jar"]
