"""The Ray Serve config and the KubeRay RayService manifest parse, and say what the service needs.

Both Serve configs are validated with Ray Serve's own schema (what `serve deploy` and KubeRay's
controller accept); the application they name is built from them without a cluster.
"""

from __future__ import annotations

import pytest
import yaml

from tests.audio_utils import ROOT

serve_schema = pytest.importorskip("ray.serve.schema", reason="the ray extra (scripts/install.sh installs it)")
pytestmark = pytest.mark.ray

SERVE_YAML = ROOT / "deploy" / "ray" / "serve.yaml"
RAYSERVICE_YAML = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
CALLBACK = "audio_service.scale.ray_serve:proxy_middlewares"


def check_serve_config(config: dict):
    """Ray's schema accepts it; it deploys our builder with autoscaling and per-replica resources."""
    schema = serve_schema.ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "audio_service.scale.ray_serve:app_builder" and app.route_prefix == "/"
    (deployment,) = app.deployments
    assert deployment.name == "audio-service"
    auto = deployment.autoscaling_config
    assert 1 <= auto["min_replicas"] <= auto["max_replicas"] and auto["target_ongoing_requests"] > 0
    assert deployment.ray_actor_options.num_cpus > 0
    env = app.runtime_env["env_vars"]
    assert env["AUDIO_SERVICE_QUOTAS__STORAGE"].startswith("redis://")  # cluster-wide limits
    assert all("__" in name for name in env if name.startswith("AUDIO_SERVICE_"))  # grouped names, no warnings
    return app, deployment


def test_serve_config_is_valid_and_builds_the_application() -> None:
    from audio_service.scale.ray_serve import app_builder

    app, _ = check_serve_config(yaml.safe_load(SERVE_YAML.read_text()))
    built = app_builder(app.args)  # what `serve run` calls; no cluster needed to build
    assert type(built).__name__ == "Application"


def test_rayservice_manifest_structure() -> None:
    docs = list(yaml.safe_load_all(RAYSERVICE_YAML.read_text()))
    (svc,) = docs
    assert svc["apiVersion"] == "ray.io/v1" and svc["kind"] == "RayService"
    assert svc["metadata"]["name"]
    spec = svc["spec"]
    _, deployment = check_serve_config(yaml.safe_load(spec["serveConfigV2"]))  # a YAML string inside the manifest
    assert deployment.ray_actor_options.num_gpus == 1  # one GPU per replica on the GPU workers
    cluster = spec["rayClusterConfig"]
    import ray

    assert cluster["rayVersion"].split(".")[0] == ray.__version__.split(".")[0]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"].endswith(":ray")  # the Dockerfile built with EXTRAS=ray
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == CALLBACK  # streams of a dead replica close with 1014
    gpu_groups = [
        g
        for g in cluster["workerGroupSpecs"]
        if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]
    ]
    assert gpu_groups and all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in gpu_groups)


def test_deployment_options_follow_the_settings() -> None:
    """Pure logic: replicas or autoscaling, CPUs on CPU, a GPU per replica where the cluster has GPUs."""
    from audio_service.scale.ray_serve import deployment_options
    from audio_service.settings import Settings

    cpu = deployment_options(Settings(ray={"replicas": 3, "num_cpus": 2}), cluster_gpus=0)
    assert cpu["num_replicas"] == 3 and cpu["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 0.0}
    gpu = deployment_options(Settings(), cluster_gpus=4)
    assert gpu["ray_actor_options"]["num_gpus"] == 1.0
    assert deployment_options(Settings(models={"device": "cpu"}), cluster_gpus=4)["ray_actor_options"]["num_gpus"] == 0.0
    shared = deployment_options(Settings(ray={"num_gpus": 0.5}), cluster_gpus=4)
    assert shared["ray_actor_options"]["num_gpus"] == 0.5
    auto = deployment_options(Settings(ray={"autoscaling": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}}))
    assert "num_replicas" not in auto
    assert auto["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}
    assert isinstance(auto["autoscaling_config"]["max_replicas"], int)


def test_replica_threads_follow_its_cpu_reservation() -> None:
    """Pure logic: a CPU replica's automatic thread counts come from ray.num_cpus, explicit ones stay."""
    from audio_service.scale.ray_serve import replica_threads
    from audio_service.settings import Settings

    cpu = {"device": "cpu"}
    one = {"models": {"cpu_threads": 1}, "streaming": {"workers": 1}}
    assert replica_threads(Settings(models=cpu, ray={"num_cpus": 1})) == one
    assert replica_threads(Settings(models=cpu, ray={"num_cpus": 4}, streaming={"cpu_threads": 2})) == {
        "models": {"cpu_threads": 4},
        "streaming": {"workers": 2},
    }
    assert replica_threads(Settings(models=cpu, ray={"num_cpus": 0.5})) == one
    assert replica_threads(Settings(models={**cpu, "cpu_threads": 3}, streaming={"workers": 2})) == {}
