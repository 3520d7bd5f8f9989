"""The production image ships no secrets and runs unprivileged.

No Docker engine runs here, so the build is replayed from its inputs: the build context
and Dockerfile that docker-compose.yml names, the Dockerfile's COPY/ADD instructions, and
the .dockerignore rules, applied with Docker's semantics (reimplemented below and checked
against the examples in Docker's documentation). The result is the list of files the
image would receive, checked against what must stay out and what must be in.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit


# --- .dockerignore, with Docker's semantics ---------------------------------------------


def _clean(pattern: str) -> str:
    """Go's filepath.Clean, then relative to the context root, as Docker reads a rule."""
    cleaned = re.sub(r"^/+", "/", posixpath.normpath(pattern))  # normpath keeps "//"
    return cleaned[1:] if len(cleaned) > 1 and cleaned.startswith("/") else cleaned


def _class(pattern: str, start: int) -> tuple[str, int]:
    """The character class at ``pattern[start] == "["`` as a regex, and the index after it."""
    i, body = start + 1, ""
    if i < len(pattern) and pattern[i] == "^":
        body, i = "^", i + 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < len(pattern):
            body, i = body + re.escape(pattern[i + 1]), i + 2
        else:
            body, i = body + (pattern[i] if pattern[i] == "-" else re.escape(pattern[i])), i + 1
    if i >= len(pattern) or body in {"", "^"}:
        raise ValueError(f"bad character class in {pattern!r}")
    # As filepath.Match documents it, a class never matches "/" (Docker's regex would let
    # "[^x]" match it; no rule in .dockerignore depends on the difference).
    return f"(?!/)[{body}]", i + 1


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's translation: ``*``, ``?`` and classes within one segment; ``**`` across."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(".*" if i == len(pattern) else "(?:.*/)?")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            regex, i = _class(pattern, i)
            out.append(regex)
            continue
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _has_wildcard(pattern: str) -> bool:
    return any(char in pattern for char in "*?[]\\")


def _matcher(pattern: str) -> Callable[[str], bool]:
    """How Docker (moby/patternmatcher) tests one cleaned rule against one path."""
    if pattern.startswith("**") and not _has_wildcard(pattern[2:]):
        # A leading "**" and then plain text is a suffix test: "**/x" is "x" or ".../x".
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
    regex = _regex(pattern)
    return lambda path: regex.fullmatch(path) is not None


@dataclass(frozen=True)
class Rule:
    pattern: str
    exception: bool
    test: Callable[[str], bool]

    def matches(self, path: str) -> bool:
        """The rule matches ``path`` itself or one of its parent directories."""
        parts = path.split("/")
        return any(self.test("/".join(parts[:n])) for n in range(len(parts), 0, -1))


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for line in text.removeprefix("\ufeff").splitlines():
            if line.startswith("#"):  # a comment only where the line starts with "#"
                continue
            pattern = line.strip()
            exception = pattern.startswith("!")
            pattern = pattern[1:].strip() if exception else pattern
            if not pattern:
                continue
            pattern = _clean(pattern)
            rules.append(Rule(pattern, exception, _matcher(pattern)))
        return cls(tuple(rules))

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (relative to the context) stays out: the last matching rule wins."""
        excluded = False
        for rule in self.rules:
            if rule.exception == excluded and rule.matches(path):
                excluded = not rule.exception
        return excluded

    def excludes_all_below(self, directory: str) -> bool:
        """``directory`` is excluded and no later ``!`` rule can let anything below it back in.

        Only then may a walk skip the directory (Docker's own walker does the same).
        """
        last = None
        for index, rule in enumerate(self.rules):
            if rule.matches(directory):
                last = index
        if last is None or self.rules[last].exception:
            return False
        later = self.rules[last + 1 :]
        return all(
            not _has_wildcard(rule.pattern) and not rule.pattern.startswith(directory + "/")
            for rule in later
            if rule.exception
        )


# --- the Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int
    workdir: str


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    into_directory: bool  # dest ends with "/" or several sources: files land inside it
    from_elsewhere: bool  # --from=<stage or image>: not from the build context


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuations joined, comments dropped, stage and WORKDIR tracked."""
    if re.match(r"(#\s*\w+\s*=.*\n)*#\s*escape\s*=", text, re.IGNORECASE):
        raise NotImplementedError("the escape parser directive")
    instructions: list[Instruction] = []
    stage, workdir, pending = -1, "/", ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (inside a continuation too) and blank lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        pending, keyword, args = "", keyword.upper(), args.strip()
        if re.search(r"<<-?['\"]?\w", args) and keyword in {"RUN", "COPY", "ADD"}:
            raise NotImplementedError("heredocs")
        if keyword == "FROM":
            stage, workdir = stage + 1, "/"
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, args))
        instructions.append(Instruction(keyword, args, stage, workdir))
    return instructions


def copies(instructions: Iterable[Instruction]) -> list[Copy]:
    """Every COPY and ADD, in every stage (a builder stage's files can reach the image)."""
    result = []
    for ins in instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        args, flags = ins.args, set()
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            flags.add(flag[2:].partition("=")[0])
            args = args.lstrip()
        parts = json.loads(args) if args.startswith("[") else args.split()
        *sources, dest = parts
        result.append(
            Copy(
                sources=tuple(sources),
                dest=posixpath.normpath(posixpath.join(ins.workdir, dest)),
                into_directory=dest.endswith("/") or len(sources) > 1,
                from_elsewhere="from" in flags,
            )
        )
    return result


def final_user(instructions: list[Instruction]) -> str | None:
    """The user of the last stage: its last USER instruction, or None (the base's: root)."""
    last_stage = max(ins.stage for ins in instructions)
    users = [ins.args for ins in instructions if ins.stage == last_stage and ins.keyword == "USER"]
    return users[-1] if users else None


def runs_as_root(user: str | None) -> bool:
    name, _, _group = (user or "").partition(":")
    return name in {"", "root", "0"}


SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)


def secret_settings(instructions: Iterable[Instruction]) -> list[str]:
    """ENV lines that set a secret-looking name to a value; ARGs with a secret-looking name.

    Both end up in the image's metadata (``docker history``, ``docker inspect``), a build
    argument even without a default; a build secret belongs in ``RUN --mount=type=secret``.
    """
    found = []
    for ins in instructions:
        if ins.keyword not in {"ENV", "ARG"}:
            continue
        tokens = shlex.split(ins.args)
        if ins.keyword == "ENV" and tokens and "=" not in tokens[0]:
            pairs = [(tokens[0], " ".join(tokens[1:]))]  # legacy form: ENV NAME value
        else:
            pairs = [(token.partition("=")[0], token.partition("=")[2]) for token in tokens]
        for name, value in pairs:
            if SECRET_NAME.search(name) and (value or ins.keyword == "ARG"):
                found.append(f"{ins.keyword} {name}")
    return found


# --- the build, replayed ----------------------------------------------------------------


def _source_matches(source: str, path: str) -> str | None:
    """Where ``path`` lands below the copy's destination, if ``source`` takes it; else None.

    "" means the destination itself (a file named as the source, copied to a file name).
    """
    if source == ".":
        return path
    wildcard = _has_wildcard(source)
    regex = _regex(source) if wildcard else None
    parts = path.split("/")
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        if (regex.fullmatch(prefix) is not None) if regex else prefix == source:
            # Below a matched directory, or a file: a wildcard's files keep their names.
            return "/".join(parts[n:]) or (parts[-1] if wildcard else "")
    return None


def image_files(
    dockerfile_text: str, ignore: DockerIgnore, files: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """Image path -> context path of every file the image takes from the context, and the
    sources named in COPY/ADD that the context would not have (the build would fail)."""
    sent = sorted(path for path in files if not ignore.excludes(path))
    image: dict[str, str] = {}
    missing: list[str] = []
    for copy in copies(parse_dockerfile(dockerfile_text)):
        if copy.from_elsewhere:
            continue
        for raw in copy.sources:
            if re.match(r"[a-z]+://|git@", raw):
                continue  # ADD from a URL: not the context
            source = _clean(raw)
            taken = False
            for path in sent:
                below = _source_matches(source, path)
                if below is None:
                    continue
                taken = True
                if below == "":
                    below = path.rsplit("/", 1)[-1] if copy.into_directory else ""
                image[posixpath.join(copy.dest, below) if below else copy.dest] = path
            if not taken:
                missing.append(raw)
    return image, missing


def walk(context: Path, ignore: DockerIgnore) -> set[str]:
    """Every file of the context (relative, "/"-separated), not descending where ``ignore``
    provably leaves everything out (.venv, .git: tens of thousands of files)."""
    found: set[str] = set()
    for root, dirs, names in os.walk(context):
        relative = Path(root).relative_to(context).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        found.update(prefix + d for d in dirs if os.path.islink(os.path.join(root, d)))
        dirs[:] = [d for d in dirs if not ignore.excludes_all_below(prefix + d)]
        found.update(prefix + name for name in names)
    return found


# Secret-bearing paths a checkout may hold, whether or not this one does: at the root,
# nested anywhere, and inside the directories the image does take.
SECRET_PROBES = (
    ".env",
    ".env.local",
    ".env.production",
    ".envrc",
    ".headwater/secret_key",
    ".headwater/.secret_key.k2j4h1",
    ".headwater/headwater.db",
    ".headwater/headwater.db-wal",
    ".headwater/warehouse.duckdb",
    ".headwater/dagster/dagster.yaml",
    ".git/config",
    "some/dir/.env",
    "deploy/.env",
    "deploy/dagster.htpasswd",
    "id_rsa",
    "id_ed25519",
    "x.pem",
    "tls/server.key",
    "headwater/.env",
    "api/.env.local",
    "ingest/.dlt/secrets.toml",
    "models/.headwater/secret_key",
    "orchestration/warehouse.duckdb",
    "catalog/headwater.db",
    "catalog/metadata.sqlite",
    "profiles/.dbt/profiles.yml",
    "profiles/server.key",
    "api/certs/tls.pem",
    "headwater/id_ed25519",
    "models/.git/config",
)
# Local environments and caches: no secrets, but nothing the image should carry either.
LOCAL_PROBES = (
    ".venv/bin/python",
    ".tools/bin/uv",
    "headwater/__pycache__/cli.cpython-311.pyc",
    "api/app.pyc",
    "target/manifest.json",
    "dbt_packages/dbt_utils/dbt_project.yml",
    "logs/dbt.log",
    ".pytest_cache/v/cache/lastfailed",
    ".mypy_cache/3.11/api.json",
    ".ruff_cache/CACHEDIR.TAG",
)

SECRET_DIRS = {".git", ".headwater", ".ssh", ".gnupg", ".aws", ".kube", ".dbt", ".dlt", ".dagster"}
SECRET_FILE = re.compile(
    r"\.env(\..+)?|\.envrc|\.?secret_key(\..+)?|id_(rsa|dsa|ecdsa|ed25519)(\.pub)?"
    r"|\.netrc|\.pgpass|\.my\.cnf|\.htpasswd"
    r"|.+\.(pem|key|p12|pfx|jks|keystore|htpasswd)"
    r"|.+\.(duckdb|duckdb\.wal|db|db-wal|db-shm|db-journal|sqlite|sqlite3)"
)
LOCAL_DIRS = {
    ".venv",
    ".tools",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "node_modules",
    "target",
    "dbt_target",
    "dbt_packages",
    "logs",
}


def secret_bearing(path: str) -> bool:
    """Written independently of .dockerignore: what a secret-bearing path looks like."""
    *dirs, name = path.split("/")
    if path == ".env.example":  # the committed reference, no values
        return False
    return bool(SECRET_DIRS.intersection(dirs)) or SECRET_FILE.fullmatch(name) is not None


def local_state(path: str) -> bool:
    """Caches, logs and local builds (compiled modules are built in the image's own stage)."""
    *dirs, name = path.split("/")
    return (
        bool(LOCAL_DIRS.intersection(dirs))
        or name.endswith((".pyc", ".pyo", ".log", ".so"))
        or name == "native.json"
    )


@dataclass(frozen=True)
class Build:
    context: Path
    dockerfile: str
    ignore: DockerIgnore
    workdir: str


@pytest.fixture(scope="module")
def build() -> Build:
    """The build docker-compose.yml describes: one image for every service built."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    specs = {json.dumps(s["build"]) for s in compose["services"].values() if "build" in s}
    assert len(specs) == 1, "every Headwater service runs the same image"
    spec: Any = json.loads(specs.pop())
    spec = {"context": spec} if isinstance(spec, str) else spec
    context = (PROJECT_ROOT / spec["context"]).resolve()
    dockerfile = context / spec.get("dockerfile", "Dockerfile")
    # BuildKit prefers an ignore file beside the Dockerfile, named after it.
    specific = dockerfile.with_name(f"{dockerfile.name}.dockerignore")
    ignore_file = specific if specific.exists() else context / ".dockerignore"
    rules = ignore_file.read_text() if ignore_file.exists() else ""
    text = dockerfile.read_text()
    return Build(context, text, DockerIgnore.parse(rules), parse_dockerfile(text)[-1].workdir)


@pytest.fixture(scope="module")
def image(build: Build) -> dict[str, str]:
    """Image path -> context path, for this checkout's files and the probes above."""
    files = walk(build.context, build.ignore) | set(SECRET_PROBES) | set(LOCAL_PROBES)
    return image_files(build.dockerfile, build.ignore, files)[0]


# --- the matcher against Docker's documented examples -------------------------------------


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        # https://docs.docker.com/build/concepts/context/#dockerignore-files
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "somedir/temp/inside.txt", True),  # a directory takes what is in it
        ("*/temp*", "temporary.txt", False),
        ("*/temp*", "a/b/temp", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("*/*/temp*", "somedir/temporary.txt", False),
        ("temp?", "tempa", True),
        ("temp?", "tempb/file", True),
        ("temp?", "temp", False),
        ("temp?", "tempab", False),
        ("temp?", "dir/tempa", False),
        ("**/*.go", "main.go", True),
        ("**/*.go", "cmd/tool/main.go", True),
        ("**/*.go", "main.gox", False),
        ("**/.env", "production.env", False),
        ("**.env", "config/production.env", True),  # "**" then plain text: a suffix test
        ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README.md", False),
        ("*.md\n!README*.md\nREADME-secret.md", "notes.md", True),
        ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
        # "**" in the middle spans zero or more segments; "*" and classes never cross "/"
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("a*", "ab/c", True),
        ("a*b", "a/b", False),
        ("a[^x]b", "a/b", False),
        ("a[^x]b", "acb", True),
        ("a[a-c]b", "abb", True),
        ("a[a-c]b", "adb", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("**", "any/thing", True),
        # rules are cleaned and relative to the context root; comments only at line start
        ("/foo/../bar/", "bar/x", True),
        ("./bar", "bar", True),
        ("# bar", "bar", False),
        ("# bar", "# bar", False),
        (".env", "deep/.env", False),  # a plain name matches at the root only
        ("**/.env", ".env", True),
        ("**/.env", "deep/down/.env", True),
        # everything out, a directory back in, something in it out again
        ("*\n!keep", "keep/a/b.txt", False),
        ("*\n!keep", "other/a.txt", True),
        ("*\n!keep\n**/secret", "keep/a/secret/key", True),
        ("dir\n!dir/file", "dir/file", False),
        ("dir\n!dir/file", "dir/other", True),
    ],
)
def test_dockerignore_rules_follow_docker(rules: str, path: str, excluded: bool) -> None:
    assert DockerIgnore.parse(rules).excludes(path) is excluded


def test_a_walk_skips_only_what_nothing_can_let_back_in() -> None:
    ignore = DockerIgnore.parse("*\n!keep\n!.venv/keep.txt\nkeep/cache")
    assert ignore.excludes_all_below("other")
    assert ignore.excludes_all_below("keep/cache")
    assert not ignore.excludes_all_below("keep")
    assert not ignore.excludes_all_below(".venv")  # a later rule names a file in it
    # A "!" rule with a wildcard might let anything back in: never skipped.
    assert not DockerIgnore.parse("*\n!**/wanted").excludes_all_below("other")


def test_the_replay_follows_copy_semantics() -> None:
    dockerfile = """\
        # syntax=docker/dockerfile:1
        FROM python:3.11-slim AS base
        WORKDIR /app
        COPY --chown=1:1 pyproject.toml \\
            uv.lock ./
        COPY ["conf/app.yaml", "/etc/app.yaml"]
        COPY --from=base /app/x /y
        ADD https://example.com/file.tgz /tmp/
        WORKDIR src
        COPY pkg* ./
        COPY . .
    """
    files = {"pyproject.toml", "uv.lock", "conf/app.yaml", "pkg1/m.py", "pkga.txt", ".env"}
    image, missing = image_files(dockerfile, DockerIgnore.parse("**/.env"), files)
    assert image["/app/pyproject.toml"] == "pyproject.toml"
    assert image["/app/uv.lock"] == "uv.lock"
    assert image["/etc/app.yaml"] == "conf/app.yaml"
    assert image["/app/src/m.py"] == "pkg1/m.py"  # a matched directory: its contents
    assert image["/app/src/pkga.txt"] == "pkga.txt"
    assert image["/app/src/conf/app.yaml"] == "conf/app.yaml"
    assert ".env" not in image.values()
    assert missing == []
    _, missing = image_files(dockerfile, DockerIgnore.parse("uv.lock"), files)
    assert missing == ["uv.lock"]  # named, but left out of the context: the build fails


# --- the image -----------------------------------------------------------------------


def test_without_the_ignore_rules_secrets_would_be_copied(build: Build) -> None:
    """The replay sees a leak when there is one (the image before .dockerignore existed)."""
    image, _ = image_files(build.dockerfile, DockerIgnore(()), SECRET_PROBES)
    assert {".env", ".git/config", ".headwater/secret_key", "api/.env.local"} <= set(image.values())


def test_no_secret_bearing_path_is_copied(image: dict[str, str]) -> None:
    leaks = sorted(path for path in image.values() if secret_bearing(path))
    assert leaks == [], f"would be copied into the image: {leaks[:20]}"


def test_no_local_environment_or_cache_is_copied(image: dict[str, str]) -> None:
    extra = sorted(path for path in image.values() if local_state(path))
    assert extra == [], f"would be copied into the image: {extra[:20]}"


def test_the_probes_are_what_the_checks_look_for() -> None:
    assert all(secret_bearing(path) for path in SECRET_PROBES)
    assert all(local_state(path) for path in LOCAL_PROBES)
    assert not any(secret_bearing(p) for p in ("api/app.py", ".env.example", "api/keys.py"))


def _project_dirs() -> list[str]:
    """The Python packages (pyproject.toml) and the dbt project's folders (dbt_project.yml)."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    dbt = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())
    folders = [f for key, value in dbt.items() if key.endswith("-paths") for f in value]
    return [*packages, "profiles", *folders]


def test_everything_the_processes_need_is_copied(build: Build, image: dict[str, str]) -> None:
    needed = {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        ".env.example",
        "dbt_project.yml",
        "workspace.yaml",
        "api/app.py",
        "headwater/cli.py",
        "headwater/migrations/script.py.mako",
        "ingest/sources.yml",
        "profiles/profiles.yml",
    }
    checkout = walk(build.context, build.ignore)
    for folder in _project_dirs():
        needed |= {p for p in checkout if p.startswith(f"{folder}/") and not local_state(p)}
        # A folder with no files yet (seeds/, tests/dbt/ ...) must be taken once it has some.
        probe = f"{folder}/_probe.sql"
        probe_image, _ = image_files(build.dockerfile, build.ignore, [probe])
        assert probe in probe_image.values(), f"{folder}/ would not be copied"
    assert any(p.startswith("models/") for p in needed)
    # The project's root is the WORKDIR: the editable install and PROJECT_ROOT point there.
    missing = sorted(p for p in needed if image.get(posixpath.join(build.workdir, p)) != p)
    assert missing == [], f"not copied to {build.workdir}: {missing[:20]}"


def test_every_named_source_is_in_the_context(build: Build) -> None:
    _, missing = image_files(build.dockerfile, build.ignore, walk(build.context, build.ignore))
    assert missing == [], f"COPY names files the context leaves out: {missing}"


# --- who the processes run as, and what the image's metadata holds -----------------------


OLD_DOCKERFILE = """\
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HEADWATER_HOME=/var/lib/headwater
WORKDIR /app
COPY . .
CMD ["headwater", "api"]
"""


@pytest.mark.parametrize(
    "dockerfile",
    [
        OLD_DOCKERFILE,
        OLD_DOCKERFILE + "USER root\n",
        OLD_DOCKERFILE + "USER 0:10001\n",
        OLD_DOCKERFILE.replace("WORKDIR", "USER 10001\nWORKDIR") + "FROM scratch\nCOPY . .\n",
    ],
)
def test_a_root_user_is_recognised(dockerfile: str) -> None:
    assert runs_as_root(final_user(parse_dockerfile(dockerfile)))


def test_processes_run_unprivileged(build: Build) -> None:
    user = final_user(parse_dockerfile(build.dockerfile))
    assert not runs_as_root(user), f"the image runs as {user or 'root (no USER)'}"
    assert user is not None and user.partition(":")[0].isdigit(), (
        "a numeric uid, so that Kubernetes' runAsNonRoot can check it"
    )


def _commands(instructions: Iterable[Instruction]) -> list[list[str]]:
    """The simple commands of every RUN as words, without RUN flags or leading VAR=value."""
    commands = []
    for ins in instructions:
        if ins.keyword != "RUN":
            continue
        for command in re.split(r"&&|\|\||;", ins.args):
            words = command.split()
            while words and (words[0].startswith("--") or re.fullmatch(r"\w+=\S*", words[0])):
                words.pop(0)
            if words:
                commands.append(words)
    return commands


def _owners(commands: list[list[str]], directory: str) -> set[str]:
    """Who `chown` or `install -o` makes the owner of ``directory``."""
    owners = set()
    for words in commands:
        if directory not in words[1:]:
            continue
        if words[0] == "chown":
            owners.add(next(w for w in words[1:] if not w.startswith("-")).partition(":")[0])
        elif words[0] == "install" and "-o" in words:
            owners.add(words[words.index("-o") + 1])
    return owners


def test_the_runtime_user_owns_what_the_processes_write(build: Build) -> None:
    """HEADWATER_HOME and DAGSTER_HOME: the same in the image and the compose file, and the
    runtime user's (a new named volume takes over the owner of the image's directory)."""
    instructions = parse_dockerfile(build.dockerfile)
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            env |= {k: v for k, _, v in (w.partition("=") for w in shlex.split(ins.args))}
    commands = _commands(instructions)
    uid = (final_user(instructions) or "0").partition(":")[0]
    runtime = {uid} | {
        words[-1]
        for words in commands
        if words[0] == "useradd" and re.search(rf"(--uid|-u)[ =]{uid}\b", " ".join(words))
    }
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    for name in ("HEADWATER_HOME", "DAGSTER_HOME"):
        directory = compose["services"]["api"]["environment"][name]
        assert env.get(name) == directory, f"{name}: image and compose file disagree"
        assert _owners(commands, directory) & runtime, f"{name} is not the runtime user's"


def test_ownership_is_read_from_the_commands() -> None:
    commands = _commands(
        parse_dockerfile(
            "FROM x\nRUN --mount=type=cache,target=/c A=1 useradd --uid 7 app"
            " && install -d -o app -m 0700 /data\nRUN chown -R 0:0 /opt/d; mkdir /e\n"
        )
    )
    assert commands[0] == ["useradd", "--uid", "7", "app"]
    assert _owners(commands, "/data") == {"app"}
    assert _owners(commands, "/opt/d") == {"0"}
    assert _owners(commands, "/e") == set()


def test_a_secret_in_env_or_arg_is_recognised() -> None:
    leaky = (
        "FROM python:3.11-slim\n"
        "ENV HEADWATER_SECRET_KEY=abc PYTHONUNBUFFERED=1\n"
        "ENV DB_PASSWORD hunter2\n"
        "ARG GITHUB_TOKEN\n"
        "ARG api_key=xyz\n"
        "ENV EMPTY_TOKEN=\n"
    )
    assert secret_settings(parse_dockerfile(leaky)) == [
        "ENV HEADWATER_SECRET_KEY",
        "ENV DB_PASSWORD",
        "ARG GITHUB_TOKEN",
        "ARG api_key",
    ]


def test_no_secret_in_env_or_arg(build: Build) -> None:
    assert secret_settings(parse_dockerfile(build.dockerfile)) == []


def test_the_image_carries_the_compiled_validator(build: Build) -> None:
    """Built in a stage with a compiler (headwater/native.py), copied into the last one."""
    instructions = parse_dockerfile(build.dockerfile)
    last = max(ins.stage for ins in instructions)
    builds = [
        ins for ins in instructions if ins.keyword == "RUN" and "headwater.native" in ins.args
    ]
    assert builds and all(ins.stage < last for ins in builds)
    taken = [c for c in copies(i for i in instructions if i.stage == last) if c.from_elsewhere]
    sources = {source for c in taken for source in c.sources}
    assert {"/app/catalog/queries/*.so", "/app/catalog/queries/native.json"} <= sources
