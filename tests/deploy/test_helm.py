"""The Helm chart (deploy/helm/authgate), proven as far as a machine without a cluster can:
Helm lints and renders it for every values file, the Kubernetes API's own schemas accept
every object, and the objects say what the chart promises (two verifiers at least, a
budget and probes on paths the services serve, walls that only the edge may pass, the
repository's nginx and kong.yml, Secrets only when none of yours is named). Each service
loads its settings from what the chart gives it. docs/kubernetes.md lists what is not
proven here."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from authgate.config import ConfigError
from authgate.contract import HEADER_KIND, HEADER_SESSION, IDENTITY_HEADERS
from examples.members import settings as members_settings
from examples.members.app import create_app as create_members_app
from examples.members.store import Store
from gateway import declarative
from issuer import settings as issuer_settings
from issuer.app import create_app as create_issuer_app
from stack.nginx import NGINX_DIR, Nginx
from verifier import settings as verifier_settings

from ..harness import REPO, VerifierProcess
from .chart import (
    FULLNAME,
    NAMESPACE,
    VALUES_DIR,
    VALUES_FILES,
    Manifests,
    container,
    environment,
    helm,
    matches,
    mounts,
    peers,
    template,
)

#: The Kubernetes versions the objects are checked against: an old one still served by
#: the big providers, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
STANDALONE = VALUES_DIR / "redis-standalone.yaml"
INGRESS_NGINX = VALUES_DIR / "ingress-nginx.yaml"
#: What the operator's own Secrets (named in the values files) hold, for the settings check.
OPERATOR_SECRETS = {
    # redis-cluster.yaml: the URL its comment shows.
    "authgate-redis": {"redis-url": "redis+cluster://:pw@redis-0.redis:6379,redis-1.redis:6379"},
    "authgate-rabbitmq": {"amqp-url": "amqp://authgate:pw@rabbitmq:5672/"},
}
#: Files a test sets on the command line to render the chart's own key Secret.
KEY_FILES = ("issuer.keys.existingSecret=", "issuer.keys.files.keys\\.json=placeholder")


@pytest.fixture(scope="module")
def rendered() -> dict[str, Manifests]:
    return {path.name: Manifests.render([path]) for path in VALUES_FILES}


def test_there_is_a_values_file_for_each_redis_topology_and_for_ingress_nginx() -> None:
    assert {p.name for p in VALUES_FILES} >= {
        "redis-standalone.yaml", "redis-sentinel.yaml", "redis-cluster.yaml", "ingress-nginx.yaml"
    }  # fmt: skip


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_helm_lints_the_chart(values: Path) -> None:
    result = helm("lint", "--strict", str(VALUES_DIR.parent), "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_follows_the_kubernetes_schemas(
    rendered: dict[str, Manifests], version: str
) -> None:
    kinds = set()
    for name, manifests in rendered.items():
        for obj in manifests.objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']}: {exc}")
            kinds.add(obj["kind"])
    assert kinds >= {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy",
                     "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress"}  # fmt: skip


def test_the_schema_check_refuses_a_broken_object(rendered: dict[str, Manifests]) -> None:
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    manifests = rendered[STANDALONE.name]
    pdb = yaml.safe_load(yaml.safe_dump(manifests.of_kind("PodDisruptionBudget")[0]))
    pdb["spec"]["minAvailible"] = pdb["spec"].pop("minAvailable")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(pdb, KUBERNETES_VERSIONS[-1], strict=True)
    hpa = yaml.safe_load(yaml.safe_dump(manifests.of_kind("HorizontalPodAutoscaler")[0]))
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[-1], strict=True)


def test_at_least_two_verifiers_always(rendered: dict[str, Manifests]) -> None:
    for name, manifests in rendered.items():
        verifier = manifests.deployment("verifier")
        [hpa] = manifests.of_kind("HorizontalPodAutoscaler")
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", verifier["metadata"]["name"])
        assert hpa["spec"]["minReplicas"] >= 2, name
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
        # The autoscaler owns the count: a fixed one would be reset on every upgrade.
        assert "replicas" not in verifier["spec"], name
        # Utilization is a share of the request: without one the HPA cannot act.
        assert container(verifier)["resources"]["requests"]["cpu"]
    fixed = Manifests.render([STANDALONE], ["verifier.autoscaling.enabled=false"])
    assert fixed.deployment("verifier")["spec"]["replicas"] >= 2
    assert not fixed.of_kind("HorizontalPodAutoscaler")
    for refused in (["verifier.autoscaling.enabled=false", "verifier.replicas=1"],
                    ["verifier.autoscaling.minReplicas=1"]):  # fmt: skip
        result = template([STANDALONE], refused)
        assert result.returncode != 0 and "2 replicas at least" in result.stderr, refused


def test_a_disruption_budget_keeps_a_verifier_up(rendered: dict[str, Manifests]) -> None:
    for name, manifests in rendered.items():
        labels = manifests.pod_labels("verifier")
        [pdb] = manifests.selecting("PodDisruptionBudget", labels)
        assert pdb["spec"]["minAvailable"] >= 1, name
        # It selects the verifiers and nothing else.
        for component in ("issuer", "gateway", "members"):
            assert not matches(pdb["spec"]["selector"]["matchLabels"],
                               manifests.pod_labels(component)), component  # fmt: skip


def _probe_paths(manifests: Manifests, component: str) -> dict[str, str]:
    main = container(manifests.deployment(component))
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    paths = {}
    for kind in ("readinessProbe", "livenessProbe"):
        probe = main[kind]["httpGet"]
        assert probe["port"] in ports, (component, kind)
        paths[kind] = probe["path"]
    return paths


def test_verifier_probes_ask_paths_the_verifier_serves(
    rendered: dict[str, Manifests], verifier: VerifierProcess
) -> None:
    """Asked of a real verifier: readiness on /readyz (Redis and keys), liveness on
    /healthz (the process alone), and both answer 200 when all is well."""
    manifests = rendered[STANDALONE.name]
    paths = _probe_paths(manifests, "verifier")
    assert paths == {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for path in paths.values():
        assert httpx.get(verifier.url + path).status_code == 200, path
    assert httpx.get(verifier.url + "/ready").status_code == 404  # a wrong path would show
    main = container(manifests.deployment("verifier"))
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert int(env["AUTHGATE_PORT"]) == main["ports"][0]["containerPort"]


def test_issuer_and_member_probes_ask_paths_they_serve(
    rendered: dict[str, Manifests], tmp_path: Path
) -> None:
    manifests = rendered[STANDALONE.name]
    issuer_paths = _probe_paths(manifests, "issuer")
    assert issuer_paths == {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    keys = _issuer_keys(tmp_path)
    app = create_issuer_app(issuer_settings.load_settings((), {"AUTHGATE_KEYS_DIR": str(keys)}))
    served = {getattr(route, "path", None) for route in app.routes}
    assert set(issuer_paths.values()) <= served
    member_paths = _probe_paths(manifests, "members")
    settings = members_settings.load((), {"MEMBERS_DB": str(tmp_path / "m.db")})
    store = Store(settings.db)
    members = create_members_app(settings, store, consume=False)

    async def ask(path: str) -> int:
        transport = httpx.ASGITransport(app=members)
        async with httpx.AsyncClient(transport=transport, base_url="http://members") as client:
            return (await client.get(path)).status_code

    for path in member_paths.values():
        assert asyncio.run(ask(path)) == 200, path


def _ingress_rule(policy: dict[str, Any]) -> dict[str, Any]:
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    found: dict[str, Any] = rule
    return found


def test_only_the_edge_reaches_the_verifier(rendered: dict[str, Manifests]) -> None:
    for name, edge in (("redis-standalone.yaml", "edge"), ("ingress-nginx.yaml", "ingress-auth")):
        manifests = rendered[name]
        [policy] = manifests.selecting("NetworkPolicy", manifests.pod_labels("verifier"))
        rule = _ingress_rule(policy)
        assert rule["ports"] == [{"port": 9181, "protocol": "TCP"}]
        [peer] = peers(rule)
        assert set(peer) == {"podSelector"}  # pods of this namespace, no namespaceSelector
        selector = peer["podSelector"]["matchLabels"]
        assert matches(selector, manifests.pod_labels(edge)), name
        others = {"issuer", "gateway", "verifier"} | (
            {"members"} if name != INGRESS_NGINX.name else set()
        )
        for component in others:
            assert not matches(selector, manifests.pod_labels(component)), (name, component)


def test_the_issuer_is_reached_through_the_gateway_and_by_verifiers_for_keys(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered[STANDALONE.name]
    [policy] = manifests.selecting("NetworkPolicy", manifests.pod_labels("issuer"))
    rule = _ingress_rule(policy)
    allowed = [p["podSelector"]["matchLabels"] for p in peers(rule)]
    admitted = {c for c in ("edge", "gateway", "verifier", "members")
                if any(matches(s, manifests.pod_labels(c)) for s in allowed)}  # fmt: skip
    assert admitted == {"gateway", "verifier"}
    # The verifiers fetch the keys from the Service that fronts these pods.
    env = {e["name"]: e.get("value") for e in container(manifests.deployment("verifier"))["env"]}
    assert env["AUTHGATE_JWKS_URL"] == f"http://{FULLNAME}-issuer:9180/.well-known/jwks.json"
    # Every component has its wall; only the edge's admits anyone.
    walls = {p["metadata"]["name"] for p in manifests.of_kind("NetworkPolicy")}
    assert walls == {
        f"{FULLNAME}-{c}" for c in ("verifier", "issuer", "gateway", "members", "edge")
    }
    [edge] = manifests.selecting("NetworkPolicy", manifests.pod_labels("edge"))
    assert "from" not in _ingress_rule(edge)


def test_every_service_fronts_the_pods_it_names(rendered: dict[str, Manifests]) -> None:
    for name, manifests in rendered.items():
        for service in manifests.of_kind("Service"):
            component = service["spec"]["selector"]["app.kubernetes.io/component"]
            main = container(manifests.deployment(component))
            assert matches(service["spec"]["selector"], manifests.pod_labels(component))
            named = {p["name"]: p["containerPort"] for p in main["ports"]}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in named, (name, service["metadata"]["name"])
                assert port["port"] == named[port["targetPort"]]


def test_no_secret_is_rendered_when_yours_is_named(rendered: dict[str, Manifests]) -> None:
    # redis-cluster.yaml names a Secret for every credential.
    manifests = rendered["redis-cluster.yaml"]
    assert manifests.names("Secret") == set()
    issuer = manifests.deployment("issuer")
    assert mounts(issuer)["/etc/authgate/keys"] == ("authgate-issuer-keys", None)
    assert mounts(issuer)["/etc/authgate/provider-secrets"] == ("authgate-provider-secrets", None)
    env = container(issuer)["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["AUTHGATE_REDIS_URL"] == {"name": "authgate-redis", "key": "redis-url"}
    assert refs["AUTHGATE_AMQP_URL"] == {"name": "authgate-rabbitmq", "key": "amqp-url"}
    # Without one of yours, the chart makes it from the values, and mounts that.
    own = Manifests.render([STANDALONE], KEY_FILES)
    keys = own.get("Secret", f"{FULLNAME}-issuer-keys")
    assert keys["stringData"] == {"keys.json": "placeholder"}
    assert mounts(own.deployment("issuer"))["/etc/authgate/keys"] == (
        keys["metadata"]["name"],
        None,
    )
    connections = rendered[STANDALONE.name].get("Secret", f"{FULLNAME}-connections")
    assert set(connections["stringData"]) == {"redis-url", "amqp-url"}


def test_the_issuer_never_starts_without_keys_it_shares() -> None:
    """No key Secret named and no key files given: the chart refuses to render, since each
    issuer pod would otherwise make keys of its own."""
    result = template([STANDALONE], ["issuer.keys.existingSecret="])
    assert result.returncode != 0
    assert "issuer.keys.files or issuer.keys.existingSecret" in result.stderr


def _issuer_keys(tmp: Path) -> Path:
    keys = tmp / "keys"
    subprocess.run(
        [str(Path(sys.executable).parent / "authgate-issuer"), "keys", "list", "--keys-dir", str(keys)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return keys


def _local_env(manifests: Manifests, component: str, tmp: Path) -> dict[str, str]:
    """The component's environment, each file it reads written here from what the chart
    mounts (ConfigMap keys) or made as the operator would (the issuer's keys)."""
    deployment = manifests.deployment(component)
    env = environment(manifests, deployment, OPERATOR_SECRETS)
    config = {c["metadata"]["name"]: c["data"] for c in manifests.of_kind("ConfigMap")}
    places = {}
    for path, (source, sub_path) in mounts(deployment).items():
        if source in config and sub_path:
            local = tmp / component / sub_path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(config[source][sub_path])
            places[path] = str(local)
        elif path == "/etc/authgate/keys":
            places[path] = str(_issuer_keys(tmp / component))
    return {key: places.get(value, value) for key, value in env.items()}


def _load_every_service(manifests: Manifests, tmp: Path) -> None:
    loaders = {
        "verifier": (verifier_settings.OPTIONS, verifier_settings.load_settings),
        "issuer": (issuer_settings.OPTIONS, issuer_settings.load_settings),
    }
    for component, (options, load) in loaders.items():
        env = _local_env(manifests, component, tmp)
        assert {k for k in env if k.startswith("AUTHGATE_")} - {o.env for o in options} == set()
        try:
            load((), env)
        except ConfigError as exc:
            raise AssertionError(f"{component}: {exc}") from exc
    env = _local_env(manifests, "members", tmp)
    assert set(env) - {o.env for o in members_settings.OPTIONS} == set()
    members_settings.load((), {**env, "MEMBERS_DB": str(tmp / "members.db")})


@pytest.mark.parametrize(
    "values",
    ["redis-standalone.yaml", "redis-sentinel.yaml", "redis-cluster.yaml", "ingress-nginx.yaml"],
)
def test_each_service_loads_its_settings_from_the_chart(
    rendered: dict[str, Manifests], values: str, tmp_path: Path
) -> None:
    """Every AUTHGATE_* / MEMBERS_* name the chart sets is one the service reads, and the
    values make a settings object without a single problem."""
    _load_every_service(rendered[values], tmp_path)


def test_a_bad_value_from_the_chart_is_refused_by_the_service(
    rendered: dict[str, Manifests], tmp_path: Path
) -> None:
    """The check above can fail: the verifier refuses the chart's values with a public URL
    that is not http(s)."""
    manifests = Manifests.render([STANDALONE], ["publicUrl=ftp://auth.example.com"])
    env = _local_env(manifests, "verifier", tmp_path)
    with pytest.raises(ConfigError, match="AUTHGATE_LOGIN_URL"):
        verifier_settings.load_settings((), env)


def test_the_gateway_serves_the_repository_kong_yml_with_this_release_names(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered[STANDALONE.name]
    text = manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]["kong.yml"]
    mine, theirs = yaml.safe_load(text), yaml.safe_load((REPO / "kong" / "kong.yml").read_text())
    urls = {s["name"]: s["url"] for s in mine["services"]}
    assert urls == {"issuer": f"http://{FULLNAME}-issuer:9180",
                    "members": f"http://{FULLNAME}-members:8081"}  # fmt: skip
    # Everything else is kong.yml as it is.
    for service in (*mine["services"], *theirs["services"]):
        service.pop("url")
    redis = '${{ env "DECK_AUTHGATE_REDIS_URL" }}'
    mine_plugin = mine["services"][1]["routes"][2]["plugins"][0]["config"]
    assert mine_plugin.pop("redis_url") == redis
    theirs["services"][1]["routes"][2]["plugins"][0]["config"].pop("redis_url")
    assert mine == theirs
    # The gateway's own loader accepts it with the Redis URL its pod gets from the Secret.
    gateway = manifests.deployment("gateway")
    env = environment(manifests, gateway, OPERATOR_SECRETS)
    config = declarative.parse(text, "kong.yml", environ=env)
    assert config.routes
    assert container(gateway)["command"] == ["authgate-gateway", "serve", "/etc/authgate/kong.yml"]
    assert mounts(gateway)["/etc/authgate/kong.yml"] == (f"{FULLNAME}-config", "kong.yml")
    # Each address it routes to is a Service of the release, at the port it serves.
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"]
                for s in manifests.of_kind("Service")}  # fmt: skip
    for url in urls.values():
        host, port = url.removeprefix("http://").split(":")
        assert services[host] == int(port)


def test_the_edge_is_the_repository_nginx_and_nginx_accepts_it(
    rendered: dict[str, Manifests], tmp_path: Path
) -> None:
    manifests = rendered[STANDALONE.name]
    data = manifests.get("ConfigMap", f"{FULLNAME}-nginx")["data"]
    assert (
        data["nginx.conf.template"] == (NGINX_DIR / "templates" / "stack.conf.template").read_text()
    )
    snippets = {p.name: p.read_text() for p in (NGINX_DIR / "authgate").glob("*.conf")}
    assert {k: v for k, v in data.items() if k != "nginx.conf.template"} == snippets
    edge = manifests.deployment("edge")
    placed = mounts(edge)
    for name in snippets:
        assert placed[f"/etc/nginx/authgate/{name}"] == (f"{FULLNAME}-nginx", name)
    # The image's entrypoint renders the template: it is kept, as compose keeps it.
    assert "command" not in container(edge) and container(edge)["args"] == ["nginx"]
    env = {e["name"]: e["value"] for e in container(edge)["env"]}
    assert env["NGINX_ENVSUBST_FILTER"] == "^AUTHGATE_"
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"]
                for s in manifests.of_kind("Service")}  # fmt: skip
    loopback = {}
    for key in ("AUTHGATE_VERIFIER_ADDR", "AUTHGATE_GATEWAY_ADDR"):
        host, port = env[key].split(":")
        assert services[host] == int(port), key
        loopback[key] = f"127.0.0.1:{port}"
    values = {k: v for k, v in env.items() if k.startswith("AUTHGATE_")}
    values.update(loopback, AUTHGATE_NGINX_RUNTIME=str(tmp_path),
                  AUTHGATE_NGINX_ERROR_LOG=str(tmp_path / "error.log"),
                  AUTHGATE_NGINX_ACCESS_LOG=str(tmp_path / "access.log"))  # fmt: skip
    Nginx(tmp_path, NGINX_DIR / "templates" / "stack.conf.template", values).check()


def test_the_ingress_nginx_example_asks_authgate_with_three_annotations(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered[INGRESS_NGINX.name]
    assert not manifests.names("Deployment") & {f"{FULLNAME}-edge"}
    example = manifests.get("Ingress", f"{FULLNAME}-protected-example")
    notes = example["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    adapter = manifests.get("Service", f"{FULLNAME}-ingress-auth")
    port = adapter["spec"]["ports"][0]["port"]
    assert notes[prefix + "auth-url"] == (
        f"http://{FULLNAME}-ingress-auth.{NAMESPACE}.svc.cluster.local:{port}/verify"
    )
    assert notes[prefix + "auth-signin"] == "https://app.example.com/login"
    wanted = [name for name, _ in IDENTITY_HEADERS] + [HEADER_KIND, HEADER_SESSION]
    assert notes[prefix + "auth-response-headers"].split(",") == wanted
    # No snippet (Critical, refused by default) and no auth cache (revocation delay).
    assert not [n for n in notes if n.endswith("-snippet") or "auth-cache" in n]
    assert set(notes) == {prefix + n for n in ("auth-url", "auth-signin", "auth-response-headers")}
    # The adapter runs the repository's template and admits the controller's pods alone.
    template_text = (NGINX_DIR / "templates" / "ingress-nginx-auth.conf.template").read_text()
    config = manifests.get("ConfigMap", f"{FULLNAME}-ingress-auth")["data"]
    assert config["nginx.conf.template"] == template_text
    [wall] = manifests.selecting("NetworkPolicy", manifests.pod_labels("ingress-auth"))
    [peer] = peers(_ingress_rule(wall))
    assert peer == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}  # fmt: skip
    # Sign-in happens on the protected host (the cookie is host-only), without auth, at
    # every path kong.yml routes to the issuer.
    sign_in = manifests.get("Ingress", f"{FULLNAME}-sign-in")
    assert not sign_in["metadata"].get("annotations")
    [rule] = sign_in["spec"]["rules"]
    [protected] = example["spec"]["rules"]
    assert rule["host"] == protected["host"] == "app.example.com"
    paths = {p["path"] for p in rule["http"]["paths"]}
    kong = yaml.safe_load((REPO / "kong" / "kong.yml").read_text())
    issuer_paths = {path.removeprefix("~").removesuffix("$")
                    for route in kong["services"][0]["routes"] for path in route["paths"]}  # fmt: skip
    assert paths == issuer_paths
