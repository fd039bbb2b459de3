FROM ubuntu
MAINTAINER Old Timer <old@example.com>

ENV DEBIAN_FRONTEND noninteractive
ENV ADMIN_PASSWORD s3cr3t-Passw0rd

RUN apt-get update
RUN apt-get install -y openssh-server sudo curl wget
RUN mkdir /var/run/sshd
RUN echo "root:${ADMIN_PASSWORD}" | chpasswd
RUN sed -i 's/#PermitRootLogin prohibit-password/PermitRootLogin yes/' /etc/ssh/sshd_config
RUN curl -k -sSL https://get.example.com/agent.sh | sudo bash -
RUN wget --no-check-certificate -O- https://example.com/setup | sh
ADD https://example.com/files/tool.tar.gz /opt/
ADD . /srv/app

EXPOSE 22 80/tcp
CMD ["/usr/sbin/sshd", "-D"]
