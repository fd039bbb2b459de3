# syntax=docker/dockerfile:1.7-labs
FROM --platform=$BUILDPLATFORM gradle:8.8-jdk21 AS build
WORKDIR /workspace
COPY --parents --exclude=**/build ./**/build.gradle.kts ./settings.gradle.kts ./
RUN --mount=type=cache,target=/home/gradle/.gradle,id=gradle \
    gradle dependencies --no-daemon > /dev/null 2>&1 || true
COPY --exclude=*.md . .
RUN --mount=type=cache,target=/home/gradle/.gradle,id=gradle \
    --mount=type=secret,id=gradle_props,target=/home/gradle/.gradle/gradle.properties \
    gradle bootJar --no-daemon

FROM eclipse-temurin:21-jre-alpine
RUN <<-EOF
	set -eu
	addgroup -S app
	adduser -S -G app app
	mkdir -p /opt/app
	EOF
COPY --link --from=build /workspace/build/libs/*.jar /opt/app/app.jar
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/otel/javaagent.jar /opt/app/otel.jar
USER app
HEALTHCHECK --interval=30s --timeout=5s CMD wget -qO- http://127.0.0.1:8080/actuator/health || exit 1
ENTRYPOINT ["java", "-javaagent:/opt/app/otel.jar", "-jar", "/opt/app/app.jar"]
