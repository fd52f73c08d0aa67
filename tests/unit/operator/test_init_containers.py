"""template.initContainers and template.volumeMounts: typed at spec time, the same rules in the
models and in the CRD schema, every problem at once with its field path.

(The spec corpora in tests/cases/ run the same kinds of cases through `kubetrain validate` and,
in tests/integration/api/test_parity.py, through the real API server.)"""

from __future__ import annotations

import pytest
import yaml
from operator_builders import meta, spec
from pydantic import ValidationError

from kubetrain.api.cluster import SHM_VOLUME, TRAINER_CONTAINER, PodOverrides
from kubetrain.api.crd import build_crd
from kubetrain.api.errors import SpecError
from kubetrain.api.loader import load_text
from kubetrain_operator import render
from kubetrain_operator.validation import parse, validate

FETCH = {"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}
CLUSTER_JOB = """\
apiVersion: kubetrain.io/v1alpha1
kind: TrainingJob
metadata: {name: demo}
spec:
  image: ghcr.io/kubetrain/trainer:0.1.0
  dataset: {type: synthetic, synthetic: {task: regression, samples: 1000}}
  model: {type: mlp, mlp: {hidden: [8]}}
  training: {maxSteps: 10, globalBatchSize: 16}
  parallelism: {nodes: 2, procsPerNode: 1, backend: gloo}
"""


def issues(template: dict) -> dict[str, str]:
    """path → message of every issue `kubetrain validate` reports for this template."""
    text = CLUSTER_JOB + "  template: " + yaml.safe_dump(template, default_flow_style=True)
    with pytest.raises(SpecError) as info:
        load_text(text, "job.yaml")
    return {i.path: i.message for i in info.value.issues}


def test_a_full_init_container_and_a_sidecar_are_accepted_and_render_as_written():
    sidecar = {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0", "restartPolicy": "Always",
               "ports": [{"containerPort": 9901, "name": "admin"}],
               "readinessProbe": {"tcpSocket": {"port": 9901}}}  # fmt: skip
    full = {**FETCH, "workingDir": "/data", "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "volumeMounts": [{"name": "kubetrain-run", "mountPath": "/data", "readOnly": True}],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": 1, "memory": "64Mi"}},
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False,
                                "seccompProfile": {"type": "RuntimeDefault"}}}  # fmt: skip
    s = spec(template={"initContainers": [full, sidecar]})

    pod = render.render_worker_pod(meta(), s, 0, 0)

    first, second = pod["spec"]["initContainers"]
    # What the user wrote, nothing added but the security defaults for keys it left out.
    assert {k: v for k, v in first.items() if k != "securityContext"} == {
        k: v for k, v in full.items() if k != "securityContext"
    }
    assert first["securityContext"] == {**render.CONTAINER_SECURITY, **full["securityContext"]}
    assert second["restartPolicy"] == "Always" and second["readinessProbe"] == {
        "tcpSocket": {"port": 9901}
    }


def test_trainer_mounts_render_as_written():
    mount = {"name": "data", "mountPath": "/data", "subPath": "a", "readOnly": True}
    s = spec(template={"volumes": [{"name": "data", "emptyDir": {}}], "volumeMounts": [mount]})

    mounts = render.render_worker_pod(meta(), s, 0, 0)["spec"]["containers"][0]["volumeMounts"]

    assert mounts[-1] == mount


def test_the_models_know_the_operators_names():
    # The API cannot import the operator: the two copies must agree.
    assert TRAINER_CONTAINER == render.CONTAINER
    assert SHM_VOLUME == render.SHM_VOLUME


@pytest.mark.parametrize(
    ("init", "path", "message"),
    [
        ({"name": "fetch"}, "initContainers[0].image", "required field is missing"),
        ({"image": "b"}, "initContainers[0].name", "required field is missing"),
        ({**FETCH, "name": "Fetch_Data"}, "initContainers[0].name", "should match pattern"),
        ({**FETCH, "name": "x" * 64}, "initContainers[0].name", "at most 63 characters"),
        ({**FETCH, "image": ""}, "initContainers[0].image", "at least 1 character"),
        ({**FETCH, "imagePullPolice": "Always"}, "initContainers[0].imagePullPolice",
         "unknown field (did you mean 'imagePullPolicy'?)"),
        ({**FETCH, "imagePullPolicy": "always"}, "initContainers[0].imagePullPolicy",
         "did you mean 'Always'?"),
        ({**FETCH, "restartPolicy": "Never"}, "initContainers[0].restartPolicy",
         "Input should be 'Always'"),
        ({**FETCH, "livenessProbe": {"exec": {"command": ["true"]}}},
         "initContainers[0].restartPolicy", "only for a sidecar (restartPolicy: Always)"),
        ({**FETCH, "env": [{"value": "1"}]}, "initContainers[0].env[0].name",
         "required field is missing"),
        ({**FETCH, "env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.name"}}}]}, "initContainers[0].env[0].valueFrom",
         "set value or valueFrom, not both"),
        ({**FETCH, "env": [{"name": "A", "valueFrom": {}}]},
         "initContainers[0].env[0].valueFrom", "set exactly one of fieldRef"),
        ({**FETCH, "envFrom": [{"prefix": "A_"}]}, "initContainers[0].envFrom[0]",
         "set exactly one of configMapRef or secretRef"),
        ({**FETCH, "volumeMounts": [{"name": "kubetrain-run"}]},
         "initContainers[0].volumeMounts[0].mountPath", "required field is missing"),
        ({**FETCH, "volumeMounts": [{"name": "d", "mountPath": "/d", "readonly": True}]},
         "initContainers[0].volumeMounts[0].readonly", "did you mean 'readOnly'?"),
        ({**FETCH, "resources": {"limits": {"cpu": "lots"}}},
         "initContainers[0].resources.limits.cpu", "should match pattern"),
        ({**FETCH, "resources": {"limit": {"cpu": 1}}}, "initContainers[0].resources.limit",
         "did you mean 'limits'?"),
        ({**FETCH, "securityContext": {"runAsUser": 0}},
         "initContainers[0].securityContext.runAsUser", "needs runAsNonRoot: false"),
        ({**FETCH, "securityContext": {"privileged": True, "runAsNonRoot": False}},
         "initContainers[0].securityContext.privileged", "needs allowPrivilegeEscalation: true"),
        ({**FETCH, "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
         "initContainers[0].securityContext.capabilities.add", "SYS_ADMIN needs"),
        ({**FETCH, "securityContext": {"seccompProfile": {"type": "Localhost"}}},
         "initContainers[0].securityContext.seccompProfile.localhostProfile",
         "set with type Localhost, and only then"),
        ({**FETCH, "securityContext": {"runAsUsr": 5}},
         "initContainers[0].securityContext.runAsUsr", "did you mean 'runAsUser'?"),
    ],
)  # fmt: skip
def test_each_bad_init_container_names_its_field(init: dict, path: str, message: str):
    found = issues({"initContainers": [init]})

    assert message in found.get(f"spec.template.{path}", ""), found


@pytest.mark.parametrize(
    ("template", "path", "message"),
    [
        ({"initContainers": [FETCH, {**FETCH, "image": "alpine"}]}, "initContainers",
         "names must be unique among the init containers"),
        ({"initContainers": [{**FETCH, "name": "trainer"}]}, "initContainers",
         "trainer is the name of kubetrain's container"),
        ({"hostIPC": True, "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]},
         "volumeMounts", "no volume dshm with hostIPC"),
        ({"hostIPC": True, "initContainers": [
            {**FETCH, "volumeMounts": [{"name": "dshm", "mountPath": "/shm"}]}]},
         "initContainers", "volumeMounts: no volume dshm with hostIPC"),
    ],
)  # fmt: skip
def test_rules_across_the_template_name_their_field(template: dict, path: str, message: str):
    assert message in issues(template).get(f"spec.template.{path}", "")


def test_a_dshm_mount_is_fine_without_host_ipc():
    mounts = [{"name": "dshm", "mountPath": "/shm"}]
    PodOverrides.model_validate({"volumeMounts": mounts, "initContainers": [
        {**FETCH, "volumeMounts": mounts}]})  # fmt: skip
    PodOverrides.model_validate({"hostIPC": False, "volumeMounts": mounts})


def test_every_problem_is_reported_at_once():
    found = issues({
        "hostIPC": True,
        "volumeMounts": [{"name": "dshm", "mountPath": "/shm"}],
        "initContainers": [
            {**FETCH, "workdir": "/data"},
            {"name": "wait", "imagePullPolicy": "always"},
            {**FETCH, "name": "x", "securityContext": {"runAsUser": 0}},
        ],
    })  # fmt: skip

    assert found == {
        "spec.template.initContainers[0].workdir": "unknown field (did you mean 'workingDir'?)",
        "spec.template.initContainers[1].image": "required field is missing",
        "spec.template.initContainers[1].imagePullPolicy": found.get(
            "spec.template.initContainers[1].imagePullPolicy"
        ),
        "spec.template.initContainers[2].securityContext.runAsUser": (
            "0 (root) needs runAsNonRoot: false (kubetrain's default is true)"
        ),
        "spec.template.volumeMounts": (
            "no volume dshm with hostIPC (the node's /dev/shm is shared then)"
        ),
    }
    assert "did you mean 'Always'?" in found["spec.template.initContainers[1].imagePullPolicy"]


def test_the_schema_carries_the_same_rules():
    spec_schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    template = spec_schema["properties"]["template"]
    inits = template["properties"]["initContainers"]
    item = inits["items"]
    assert inits["maxItems"] == 16
    assert sorted(item["required"]) == ["image", "name"]
    assert item["properties"]["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert item["properties"]["name"]["maxLength"] == 63
    assert item["properties"]["restartPolicy"]["enum"] == ["Always"]
    assert item["properties"]["imagePullPolicy"]["enum"] == ["Always", "IfNotPresent", "Never"]
    assert sorted(item["properties"]["volumeMounts"]["items"]["required"]) == [
        "mountPath", "name"
    ]  # fmt: skip
    assert [r["fieldPath"] for r in item["x-kubernetes-validations"]] == [".restartPolicy"]
    messages = {r["message"] for r in template["x-kubernetes-validations"]}
    assert "names must be unique among the init containers" in messages
    assert any(m.startswith("no volume dshm with hostIPC") for m in messages)
    security = item["properties"]["securityContext"]
    assert {r["fieldPath"] for r in security["x-kubernetes-validations"]} == {
        ".privileged", ".capabilities.add", ".runAsUser"
    }  # fmt: skip


def test_operator_parse_refuses_a_dshm_mount_with_host_ipc_naming_the_path():
    obj = yaml.safe_load(CLUSTER_JOB)
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    obj["spec"]["template"] = {"hostIPC": True, "volumeMounts": mounts}

    parsed, problems = parse(obj)

    assert parsed is None
    assert any(p.startswith("spec.template.volumeMounts: no volume dshm with hostIPC")
               for p in problems), problems  # fmt: skip


def test_operator_refuses_an_init_container_mount_of_no_volume():
    s = spec(template={"initContainers": [
        {**FETCH, "volumeMounts": [{"name": "kubetrain-run", "mountPath": "/r"},
                                   {"name": "nope", "mountPath": "/n"}]}]})  # fmt: skip

    assert validate("demo", {}, s) == [
        "spec.template.initContainers[0].volumeMounts[1].name: no volume 'nope'"
    ]


def test_model_errors_are_validation_errors():
    with pytest.raises(ValidationError, match=r"initContainers\.0\.image"):
        PodOverrides.model_validate({"initContainers": [{"name": "a"}]})
