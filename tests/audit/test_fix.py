"""`hardrun audit --fix` and `--fix --diff`, as a user runs them on real-looking files.

Each fix is shown alone (a policy with only its rule on) with the exact diff it makes;
then together, on files with comments, quoting, CRLF line endings and a BOM, which
must stay byte for byte; the fixed files parse and audit clean for the fixed rules.
"""
import os
import re

import pytest

from hardrun.audit.engine import audit_text
from hardrun.audit.fixes import FIXABLE, FIXABLE_RULES
from hardrun.policy import audit_options, load_policy
from tests.helpers import run_hardrun


def only(rule):
    return f"version: 1\ndefault-rules: off\nrules: {{{rule}: warning}}\n"


def diff_of(tmp_path, name, text, policy_text):
    (tmp_path / name).write_text(text)
    (tmp_path / "policy.yaml").write_text(policy_text)
    result = run_hardrun("audit", "--fix", "--diff", "--policy", "policy.yaml", name, cwd=tmp_path)
    assert (tmp_path / name).read_text() == text            # --diff writes nothing
    return result


COMPOSE = """\
# The shop's stack
services:
  web:
    image: registry.example/shop:1.4
    user: "101"
    ports:
      - "8080:80"
    volumes:
      - ./static:/srv/static
"""

KUBERNETES = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.example/shop:1.4
          ports:
            - containerPort: 8080
"""

DOCKERFILE = """\
FROM debian:12
RUN apt-get update && apt-get install -y curl
COPY requirements.txt /srv/
RUN pip install -r /srv/requirements.txt
ADD app.py /srv/app.py
USER 1000
"""

HEADER = "--- a/{0}\n+++ b/{0}\n"

# (rule, file name, text, the diff after the header)
SINGLE_FIXES = [
    ("HR2004", "compose.yaml", COMPOSE, """\
@@ -7,3 +7,4 @@
       - "8080:80"
     volumes:
       - ./static:/srv/static
+    cap_drop: [ALL]
"""),
    ("HR2005", "compose.yaml", COMPOSE, """\
@@ -7,3 +7,4 @@
       - "8080:80"
     volumes:
       - ./static:/srv/static
+    security_opt: [no-new-privileges:true]
"""),
    ("HR2006", "compose.yaml", COMPOSE, """\
@@ -7,3 +7,4 @@
       - "8080:80"
     volumes:
       - ./static:/srv/static
+    read_only: true
"""),
    ("HR2011", "compose.yaml", COMPOSE, """\
@@ -6,4 +6,4 @@
     ports:
       - "8080:80"
     volumes:
-      - ./static:/srv/static
+      - ./static:/srv/static:ro
"""),
    ("HR2013", "compose.yaml", COMPOSE, """\
@@ -4,6 +4,6 @@
     image: registry.example/shop:1.4
     user: "101"
     ports:
-      - "8080:80"
+      - "127.0.0.1:8080:80"
     volumes:
       - ./static:/srv/static
"""),
    ("HR2004", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,6 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            capabilities:
+              drop: [ALL]
"""),
    ("HR2005", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,5 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            allowPrivilegeEscalation: false
"""),
    ("HR2006", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,5 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            readOnlyRootFilesystem: true
"""),
    ("HR2012", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,5 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            runAsNonRoot: true
"""),
    ("HR3008", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,5 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            runAsNonRoot: true
"""),
    ("HR3009", "deploy.yaml", KUBERNETES, """\
@@ -10,3 +10,6 @@
           image: registry.example/shop:1.4
           ports:
             - containerPort: 8080
+          securityContext:
+            seccompProfile:
+              type: RuntimeDefault
"""),
    ("HR1017", "Dockerfile", DOCKERFILE, """\
@@ -1,6 +1,6 @@
 FROM debian:12
-RUN apt-get update && apt-get install -y curl
+RUN apt-get update && apt-get install --no-install-recommends -y curl && rm -rf /var/lib/apt/lists/*
 COPY requirements.txt /srv/
-RUN pip install -r /srv/requirements.txt
+RUN pip install --no-cache-dir -r /srv/requirements.txt
 ADD app.py /srv/app.py
 USER 1000
"""),
    ("HR1011", "Dockerfile", DOCKERFILE, """\
@@ -2,5 +2,5 @@
 RUN apt-get update && apt-get install -y curl
 COPY requirements.txt /srv/
 RUN pip install -r /srv/requirements.txt
-ADD app.py /srv/app.py
+COPY app.py /srv/app.py
 USER 1000
"""),
]


@pytest.mark.parametrize("rule,name,text,expected", SINGLE_FIXES,
                         ids=[f"{rule}-{name}" for rule, name, _, _ in SINGLE_FIXES])
def test_each_fix_alone_shows_its_exact_diff(rule, name, text, expected, tmp_path):
    result = diff_of(tmp_path, name, text, only(rule))
    assert result.returncode == 1, result.stderr
    assert result.stdout == HEADER.format(name) + expected
    assert result.stderr == ""


def test_every_fixable_rule_has_a_single_fix_test():
    tested = {(rule, _kind(name)) for rule, name, _, _ in SINGLE_FIXES}
    assert tested == {(rule, kind) for kind, rules in FIXABLE.items() for rule in rules}


def _kind(name):
    return {"compose.yaml": "compose", "deploy.yaml": "kubernetes", "Dockerfile": "dockerfile"}[name]


def test_help_and_rules_name_exactly_the_fixable_rules():
    help_text = " ".join(run_hardrun("audit", "--help").stdout.split())
    for kind, label in (("compose", "compose"), ("kubernetes", "Kubernetes"), ("dockerfile", "Dockerfile")):
        listed = re.search(rf"{label} ((?:HR\d{{4}} ?)+)", help_text).group(1).split()
        assert sorted(listed) == sorted(FIXABLE[kind]), kind
    rules = run_hardrun("rules").stdout.splitlines()
    marked = {line.split()[0] for line in rules if "[--fix:" in line}
    assert marked == FIXABLE_RULES


# ------------------------------------------------------------ everything together

COMPOSE_CRLF = (
    "# Production stack -- keep in sync with the runbook\r\n"
    "services:\r\n"
    "  web:\r\n"
    "    image: 'nginx:1.27'   # pinned by the release job\r\n"
    "    ports: [\"443:443\", 8080:80]\r\n"
    "    volumes:\r\n"
    "      - \"./conf:/etc/nginx/conf.d:z\"\r\n"
    "      - type: bind\r\n"
    "        source: ./logs\r\n"
    "        target: /var/log/nginx\r\n"
    "    user: \"101\"\r\n"
    "\r\n"
    "  db:\r\n"
    "    image: postgres:16\r\n"
    "    cap_drop:\r\n"
    "      - NET_RAW\r\n"
    "    security_opt:\r\n"
    "      - label:type:container_t\r\n"
    "    read_only: false   # postgres writes its socket in /run\r\n"
    "    user: postgres\r\n"
)

COMPOSE_CRLF_FIXED = (
    "# Production stack -- keep in sync with the runbook\r\n"
    "services:\r\n"
    "  web:\r\n"
    "    image: 'nginx:1.27'   # pinned by the release job\r\n"
    "    ports: [\"127.0.0.1:443:443\", 127.0.0.1:8080:80]\r\n"
    "    volumes:\r\n"
    "      - \"./conf:/etc/nginx/conf.d:ro,z\"\r\n"
    "      - type: bind\r\n"
    "        source: ./logs\r\n"
    "        target: /var/log/nginx\r\n"
    "        read_only: true\r\n"
    "    user: \"101\"\r\n"
    "    cap_drop: [ALL]\r\n"
    "    security_opt: [no-new-privileges:true]\r\n"
    "    read_only: true\r\n"
    "\r\n"
    "  db:\r\n"
    "    image: postgres:16\r\n"
    "    cap_drop:\r\n"
    "      - NET_RAW\r\n"
    "      - ALL\r\n"
    "    security_opt:\r\n"
    "      - label:type:container_t\r\n"
    "      - no-new-privileges:true\r\n"
    "    read_only: false   # postgres writes its socket in /run\r\n"
    "    user: postgres\r\n"
)


def test_fix_rewrites_in_place_keeping_every_other_byte(tmp_path):
    path = tmp_path / "stack.yml"
    path.write_bytes(b"\xef\xbb\xbf" + COMPOSE_CRLF.encode())
    path.chmod(0o640)
    result = run_hardrun("audit", "--fix", "stack.yml", cwd=tmp_path)
    assert path.read_bytes() == b"\xef\xbb\xbf" + COMPOSE_CRLF_FIXED.encode()
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert "fixed 9 finding(s) in 1 file(s)" in result.stderr
    # what remains is reported, and the explicit read_only: false was left to its author
    assert re.search(r"stack\.yml:\d+ HR2006 warning \[db\]", result.stdout)
    assert not re.search(r"HR20(04|05|11|13)|HR2006 warning \[web\]", result.stdout)
    assert [p.name for p in tmp_path.iterdir()] == ["stack.yml"]     # no temporary left


@pytest.mark.parametrize("policy", ["default", "restricted"])
def test_fixed_files_parse_and_audit_clean_for_the_fixed_rules(policy, tmp_path):
    files = {"compose.yaml": COMPOSE, "deploy.yaml": KUBERNETES}
    if policy == "default":
        files["Dockerfile"] = DOCKERFILE      # restricted judges no Dockerfile rule
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = run_hardrun("audit", "--fix", "--policy", policy, ".", cwd=tmp_path)
    assert f"in {len(files)} file(s)" in result.stderr, result.stderr
    options = audit_options(load_policy(policy))
    for name, text in files.items():
        kind = _kind(name)
        before = {f.rule for f in audit_text(text, kind, name, options)}
        after = {f.rule for f in audit_text((tmp_path / name).read_text(), kind, name, options)}
        assert (before & FIXABLE[kind]) and not (after & FIXABLE[kind]), (name, before, after)


CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: job
            image: registry.example/report:1
            securityContext:
              runAsUser: 1000    # the report user
              capabilities:
                add: ["NET_BIND_SERVICE"]
              allowPrivilegeEscalation: true
          restartPolicy: Never
"""

# (name, text, policy, the exit status, the whole diff): the cases beside one rule's fix
SPECIAL_CASES = {
    "kubernetes fixes merge into an existing securityContext": ("cron.yaml", CRONJOB, "version: 1\n", 1, """\
@@ -14,5 +14,7 @@
               runAsUser: 1000    # the report user
               capabilities:
                 add: ["NET_BIND_SERVICE"]
+                drop: [ALL]
               allowPrivilegeEscalation: true
+              readOnlyRootFilesystem: true
           restartPolicy: Never
"""),
    "compose v1 indented by four": (
        "legacy.yml",
        "web:\n    image: nginx:1.27\n    user: nginx\n    volumes:\n        - /srv/www:/usr/share/nginx/html:rw\n",
        only("HR2011") + "practices: {writable-root: on}\n", 1, """\
@@ -2,4 +2,5 @@
     image: nginx:1.27
     user: nginx
     volumes:
-        - /srv/www:/usr/share/nginx/html:rw
+        - /srv/www:/usr/share/nginx/html:ro
+    read_only: true
"""),
    "nothing to fix": ("Dockerfile", "FROM debian:12\nUSER 1000\n", only("HR1017"), 0, None),
    "inline suppressions are respected": (
        "Dockerfile",
        "FROM debian:12\n# hardrun ignore=HR1011 reason=\"unpacks on purpose\"\nADD app.py /srv/\nUSER 1000\n",
        only("HR1011"), 0, None),
}


@pytest.mark.parametrize("name, text, policy_text, status, expected", SPECIAL_CASES.values(), ids=SPECIAL_CASES)
def test_special_cases_show_their_exact_diff(name, text, policy_text, status, expected, tmp_path):
    result = diff_of(tmp_path, name, text, policy_text)
    assert result.returncode == status, result.stderr
    assert result.stdout == ("" if expected is None else HEADER.format(name) + expected)
    assert result.stderr == ""


def test_a_file_that_cannot_be_parsed_is_never_touched(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  web:\n    image: nginx\n    privileged: [\n")
    good = tmp_path / "Dockerfile"
    good.write_text(DOCKERFILE)
    before = os.stat(broken)
    result = run_hardrun("audit", "--fix", ".", cwd=tmp_path)
    assert result.returncode == 2                        # the broken file is still an error
    assert broken.read_text() == "services:\n  web:\n    image: nginx\n    privileged: [\n"
    assert os.stat(broken).st_mtime_ns == before.st_mtime_ns
    assert "COPY app.py" in good.read_text()             # the other file was fixed


def test_a_symlink_is_not_written_through(tmp_path):
    target = tmp_path / "elsewhere.yaml"
    target.write_text(COMPOSE)
    (tmp_path / "repo").mkdir()
    link = tmp_path / "repo" / "compose.yaml"
    link.symlink_to(target)
    result = run_hardrun("audit", "--fix", "compose.yaml", cwd=tmp_path / "repo")
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert target.read_text() == COMPOSE and link.is_symlink()
    # control: the same file, not a link, is fixed
    link.unlink()
    link.write_text(COMPOSE)
    assert run_hardrun("audit", "--fix", "compose.yaml", cwd=tmp_path / "repo").returncode == 1
    assert "cap_drop: [ALL]" in link.read_text()


def test_usage_errors(tmp_path):
    result = run_hardrun("audit", "--diff", ".", cwd=tmp_path)
    assert result.returncode == 2 and "--diff shows what --fix would change" in result.stderr
    result = run_hardrun("audit", "--fix", "-", input="FROM debian\n", cwd=tmp_path)
    assert result.returncode == 2 and "cannot fix standard input" in result.stderr
