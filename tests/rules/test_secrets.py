"""Secret judges: names, values, credential literals in text and in shell commands."""
import pytest
from hypothesis import given, strategies as st

from hardrun.audit.secrets import (find_credential_literals, is_literal, is_secret_name,
                                   is_secret_value, pipeline_credentials)
from hardrun.spec.build import Command


def cmd(*words, env=()):
    return Command(tuple(words), 1, tuple(env))


@pytest.mark.parametrize("name", [
    "PASSWORD", "DB_PASSWORD", "DB_PASS", "MYSQL_PWD", "PGPASSWORD", "MYSQL_ROOT_PASSWORD",
    "GITHUB_TOKEN", "NPM_TOKEN", "apiKey", "API_KEY", "APIKey", "STRIPE_API_KEY",
    "AWS_SECRET_ACCESS_KEY", "PRIVATE_KEY", "SSH_PRIVATE_KEY", "CLIENT_SECRET", "client-secret",
    "CREDENTIALS", "BASIC_AUTH", "NPM_AUTH", "_authToken", "SECRET_KEY_BASE", "ENCRYPTION_KEY",
    "GPG_PASSPHRASE", "JWT_SECRET", "AccessKey",
])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "DB_PASSWORD_FILE", "TOKEN_PATH", "SECRETS_DIR", "AUTH_URL", "TOKEN_HOST", "DB_USER",
    "SECRET_NAME", "PASSWORD_MIN_LENGTH", "TOKEN_SIZE", "GPG_KEY", "GPG_KEYS", "NODE_GPG_KEYS",
    "KEY_FINGERPRINT", "KEYRING", "AWS_ACCESS_KEY_ID", "API_KEY_ID", "PUBLIC_KEY", "SSH_PUB_KEY",
    "AUTH_METHOD", "AUTH_ENABLED", "PWD", "OLDPWD", "KEY", "SORT_KEY", "PATH", "HOME",
    "PASSENGER_VERSION", "BYPASS_PROXY", "COMPASS_HOME", "TOKENIZERS_PARALLELISM",
])
def test_not_secret_names(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize("value", ["s3cr3t", "changeme", "'hunter2'", "admin", "abc${X}"])
def test_secret_values_include_placeholders(value):
    assert is_secret_value(value)


@pytest.mark.parametrize("value", [None, "", '""', "${TOKEN}", "$TOKEN", '"$USER:$PASS"',
                                   "${TOKEN:-}", "$(cat /run/secrets/t)", "`cat /t`", "true",
                                   "no", "0", "/run/secrets/db_password", "./secret.txt",
                                   "<your-token>", "{{ token }}", "%%TOKEN%%"])
def test_not_secret_values(value):
    assert not is_secret_value(value)


def test_is_literal_sees_literal_text_around_expansions():
    assert is_literal("admin:${PASS}")
    assert not is_literal("${USER}:${PASS}")


def kinds(text):
    return [credential.kind for credential in find_credential_literals(text)]


def test_cloud_keys_and_tokens():
    assert kinds("ENV AWS=AKIAZ3ABCDEFGHIJKLMN") == ["aws-access-key"]
    assert kinds("ASIAZ3ABCDEFGHIJKLMN") == ["aws-access-key"]
    assert kinds("AKIAIOSFODNN7EXAMPLE") == []            # AWS's documentation key
    assert kinds("ghp_" + "a1B2" * 9) == ["github-token"]
    assert kinds("github_pat_11ABCDEFG0123456789_abcdefghijkl") == ["github-token"]
    assert kinds("glpat-abcdefghij0123456789") == ["gitlab-token"]
    assert kinds("xoxb-123456789012-abcdef") == ["slack-token"]
    assert kinds("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n") == ["private-key"]
    assert kinds("-----BEGIN OPENSSH PRIVATE KEY-----") == ["private-key"]
    assert kinds("-----BEGIN PUBLIC KEY-----") == []
    assert kinds("-----BEGIN PGP PUBLIC KEY BLOCK-----") == []


def test_messages_never_repeat_the_secret():
    token = "ghp_" + "Zq9x" * 9
    (credential,) = find_credential_literals(f"git clone https://{token}@github.com/a/b")
    assert token not in credential.description and "ghp_" in credential.description
    (credential,) = find_credential_literals("https://deploy:Sup3rS3cret@example.com/x")
    assert "Sup3rS3cret" not in credential.description and "deploy" in credential.description


def test_url_userinfo_only_with_a_literal_password():
    assert kinds("pip install --index-url https://user:p4ss@pypi.example.com/simple x") == ["url-userinfo"]
    assert kinds("postgres://app:${DB_PASSWORD}@db:5432/app") == []
    assert kinds("https://${USER}:${TOKEN}@example.com") == []
    assert kinds("https://x-access-token:$TOKEN@github.com/a/b") == []
    assert kinds("ssh://git@github.com:22/a/b") == []
    assert kinds("git@github.com:a/b.git") == []
    assert kinds("https://example.com:8443/path") == []


def test_line_offset_locates_the_literal():
    (credential,) = find_credential_literals("a\nb\nAKIAZ3ABCDEFGHIJKLMN")
    assert credential.line_offset == 2


def test_npmrc_auth_lines():
    assert kinds("echo //registry.npmjs.org/:_authToken=abc123 > .npmrc") == ["npmrc-auth"]
    assert kinds("echo //registry.npmjs.org/:_authToken=${NPM_TOKEN} > .npmrc") == []


@given(st.text(max_size=200))
def test_find_credential_literals_never_fails(text):
    find_credential_literals(text)


def found(*commands):
    return [credential.kind for credential in pipeline_credentials(commands)]


def test_curl_user_with_literal_password():
    assert found(cmd("curl", "-u", "admin:pass", "https://x")) == ["curl"]
    assert found(cmd("curl", "--user", "admin:pass", "https://x")) == ["curl"]
    assert found(cmd("curl", "--user=admin:pass", "https://x")) == ["curl"]
    assert found(cmd("curl", "-uadmin:pass", "https://x")) == ["curl"]
    assert found(cmd("curl", "-fsSLu", "admin:pass", "https://x")) == ["curl"]


def test_curl_user_without_literal_password():
    assert found(cmd("curl", "-u", "$USER:$TOKEN", "https://x")) == []
    assert found(cmd("curl", "-u", "admin", "https://x")) == []          # curl prompts
    assert found(cmd("curl", "-o", "-u", "https://x")) == []             # -u is -o's value
    assert found(cmd("curl", "-H", "Authorization: Bearer $T", "https://x")) == []


def test_wget_mysql_htpasswd_login_sshpass_useradd():
    assert found(cmd("wget", "--password=pw", "--user=u", "https://x")) == ["wget"]
    assert found(cmd("wget", "--http-password", "pw", "https://x")) == ["wget"]
    assert found(cmd("wget", "--password=$PW", "https://x")) == []
    assert found(cmd("mysql", "-uroot", "-pSECRET", "-e", "select 1")) == ["mysql"]
    assert found(cmd("mysqladmin", "--password=SECRET", "ping")) == ["mysqladmin"]
    assert found(cmd("mysql", "-uroot", "-p", "db")) == []               # prompts
    assert found(cmd("mysql", "-uroot", "-p$MYSQL_ROOT_PASSWORD")) == []
    assert found(cmd("htpasswd", "-bc", "/etc/nginx/.htpasswd", "admin", "pw")) == ["htpasswd"]
    assert found(cmd("htpasswd", "-nbB", "admin", "pw")) == ["htpasswd"]
    assert found(cmd("htpasswd", "-c", "/etc/nginx/.htpasswd", "admin")) == []
    assert found(cmd("docker", "login", "-u", "bot", "-p", "pw", "registry.example.com")) == ["docker"]
    assert found(cmd("docker", "login", "--password-stdin", "-u", "bot")) == []
    assert found(cmd("sshpass", "-p", "pw", "ssh", "host")) == ["sshpass"]
    assert found(cmd("sshpass", "-e", "ssh", "host")) == []
    assert found(cmd("useradd", "-m", "-p", "Xy7pQ2wLrT0aZ", "bob")) == ["useradd"]
    assert found(cmd("useradd", "-m", "-s", "/bin/sh", "-p", "*", "bob")) == []


def test_passwords_piped_into_chpasswd_and_passwd():
    assert found(cmd("echo", "root:toor"), cmd("chpasswd")) == ["chpasswd"]
    assert found(cmd("printf", "root:toor\n"), cmd("chpasswd")) == ["chpasswd"]
    assert found(cmd("echo", "root:${ROOT_PW}"), cmd("chpasswd")) == []
    assert found(cmd("echo", "-e", "pw\npw"), cmd("passwd", "root")) == ["passwd"]
    assert found(cmd("echo", "$PW"), cmd("passwd", "--stdin", "app")) == []


def test_secret_variables_assigned_literals():
    assert found(cmd("psql", "-h", "db", env=[("PGPASSWORD", "pw")])) == ["secret-variable"]
    assert found(cmd("psql", env=[("PGPASSWORD", "$PW")])) == []
    assert found(cmd("make", env=[("GPG_KEY", "ABCDEF0123456789")])) == []


def test_package_manager_auth_config():
    assert found(cmd("npm", "config", "set", "//registry.npmjs.org/:_authToken", "abc")) == ["npm"]
    assert found(cmd("npm", "config", "set", "//r.example.com/:_authToken=abc")) == ["npm"]
    assert found(cmd("npm", "config", "set", "//r/:_authToken", "${NPM_TOKEN}")) == []
    assert found(cmd("npm", "config", "set", "registry", "https://r.example.com")) == []
