#!/usr/bin/env python3
"""Generates crates/api/src/protobuf/table.rs, the wire schema the protobuf
request-body decoder walks.

Inputs (both are crates in the local cargo registry; nothing is fetched):

* k8s-pb 0.9.0 (prost code generated from upstream's generated.proto files):
  message names, field numbers, wire types, repeated/map, nested message
  types. Only these wire-format facts are taken; no code or comments.
* k8s-openapi 0.29.0 (v1_33): the JSON field names, used to verify the names
  this script derives, and which fields are required (non-`Option`; upstream
  JSON always writes those, even when zero).

JSON names are derived from prost's snake_case field names (prost turned the
proto's camelCase into snake_case, losing acronyms), with JSON_NAME_EXCEPTIONS
for the acronym cases; every derived name is checked against k8s-openapi and
the script fails on a mismatch.

Zero values: upstream's gogo-protobuf marshalling writes every non-pointer
scalar field, zero or not, while the JSON encoding omits `omitempty` zeros.
The decoder therefore drops zero scalars ("" / 0 / false / IntOrString 0)
unless the Go field is a pointer (POINTER_FIELDS, from upstream's types.go)
or required (k8s-openapi non-`Option`), where a zero on the wire is a value.

Embedded Go structs (`json:",inline"`, INLINE_FIELDS) are nested messages on
the wire but flat in JSON; the table marks them `inline`.

Roots: every kind in crates/api/src/resources.rs plus EXTRA_ROOTS; only
messages reachable from them are emitted.

Usage: scripts/gen-proto-table.py [--check] [-v]
  --check  regenerate in memory and fail if table.rs differs.
  -v       list the fields skipped because Kubernetes 1.33 (k8s-openapi)
           does not have them (k8s-pb is newer); upstream 1.33's decoder
           skips them as unknown fields too.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "crates/api/src/protobuf/table.rs")
RESOURCES = os.path.join(REPO, "crates/api/src/resources.rs")
CARGO_HOME = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))


def find_crate(name):
    hits = sorted(glob.glob(os.path.join(CARGO_HOME, "registry/src/*", name)))
    if not hits:
        sys.exit(f"crate source {name} not found under {CARGO_HOME}/registry/src "
                 "(run `cargo fetch` for a crate that depends on it)")
    return hits[-1]


K8S_PB = os.path.join(find_crate("k8s-pb-0.9.0"), "src")
K8S_OPENAPI = os.path.join(find_crate("k8s-openapi-0.29.0"), "src/v1_33")

# Subresource and option kinds that are request bodies too.
EXTRA_ROOTS = [
    ("", "v1", "Binding"),
    ("policy", "v1", "Eviction"),
    ("autoscaling", "v1", "Scale"),
    ("meta.k8s.io", "v1", "DeleteOptions"),
]

# Messages decoded specially (their JSON form is not an object of fields).
SPECIAL = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrStr",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExt",
}

SCALARS = {"string": "Str", "bytes": "Bytes", "int32": "I32", "int64": "I64",
           "bool": "Bool", "double": "F64"}

# prost snake_case name -> JSON name, where plain lowerCamelCase is wrong.
# Keyed "Message.field" for one message or "field" for every message.
JSON_NAME_EXCEPTIONS = {
    "DaemonEndpoint.port": "Port",
    "a_pi_group": "apiGroup",
    "client_ip": "clientIP",
    "cluster_ip": "clusterIP",
    "cluster_ips": "clusterIPs",
    "container_id": "containerID",
    "boot_id": "bootID",
    "dataset_uuid": "datasetUUID",
    "disk_uri": "diskURI",
    "downward_api": "downwardAPI",
    "external_id": "externalID",
    "external_ips": "externalIPs",
    "host_ip": "hostIP",
    "host_ips": "hostIPs",
    "host_ipc": "hostIPC",
    "host_pid": "hostPID",
    "image_id": "imageID",
    "load_balancer_ip": "loadBalancerIP",
    "machine_id": "machineID",
    "non_resource_ur_ls": "nonResourceURLs",
    "pd_id": "pdID",
    "pod_cidr": "podCIDR",
    "pod_cid_rs": "podCIDRs",
    "pod_ip": "podIP",
    "pod_ips": "podIPs",
    "provider_id": "providerID",
    "resource_id": "resourceID",
    "scale_io": "scaleIO",
    "set_hostname_as_fqdn": "setHostnameAsFQDN",
    "storage_policy_id": "storagePolicyID",
    "system_uuid": "systemUUID",
    "target_ww_ns": "targetWWNs",
    "volume_id": "volumeID",
}

# Go embedded structs (`json:",inline"`): the wire has a nested message, the
# JSON has its fields in the parent object.
INLINE_FIELDS = {
    "local_object_reference",
    "EphemeralContainer.ephemeral_container_common",
    "Volume.volume_source",
    "PersistentVolumeSpec.persistent_volume_source",
    "Probe.handler",
    "IngressRule.ingress_rule_value",
}

# Go pointer fields (scalars and IntOrString) of the reachable messages: a
# zero value on the wire is an explicit value there. Keyed by message name
# (package.Message, package as in k8s-pb's module path), JSON field names.
POINTER_FIELDS = {k: set(v.split()) for k, v in {
    "apps.v1.DaemonSetSpec": "revisionHistoryLimit",
    "apps.v1.DaemonSetStatus": "collisionCount",
    "apps.v1.DeploymentSpec": "replicas revisionHistoryLimit progressDeadlineSeconds",
    "apps.v1.DeploymentStatus": "collisionCount terminatingReplicas",
    "apps.v1.ReplicaSetSpec": "replicas",
    "apps.v1.ReplicaSetStatus": "terminatingReplicas",
    "apps.v1.RollingUpdateDaemonSet": "maxUnavailable maxSurge",
    "apps.v1.RollingUpdateDeployment": "maxUnavailable maxSurge",
    "apps.v1.RollingUpdateStatefulSetStrategy": "partition maxUnavailable",
    "apps.v1.StatefulSetSpec": "replicas revisionHistoryLimit",
    "apps.v1.StatefulSetStatus": "collisionCount",
    "batch.v1.CronJobSpec": "startingDeadlineSeconds suspend successfulJobsHistoryLimit "
                            "failedJobsHistoryLimit timeZone",
    "batch.v1.JobSpec": "parallelism completions activeDeadlineSeconds manualSelector "
                        "backoffLimit ttlSecondsAfterFinished completionMode suspend "
                        "backoffLimitPerIndex maxFailedIndexes podReplacementPolicy managedBy",
    "batch.v1.JobStatus": "ready failedIndexes terminating",
    "batch.v1.PodFailurePolicyOnExitCodesRequirement": "containerName",
    "batch.v1.SuccessPolicyRule": "succeededIndexes succeededCount",
    "coordination.v1.LeaseSpec": "holderIdentity leaseDurationSeconds leaseTransitions "
                                 "strategy preferredHolder",
    "core.v1.AppArmorProfile": "localhostProfile",
    "core.v1.AzureDiskVolumeSource": "cachingMode fsType readOnly kind",
    "core.v1.AzureFilePersistentVolumeSource": "secretNamespace",
    "core.v1.CSIVolumeSource": "readOnly fsType",
    "core.v1.ClientIpConfig": "timeoutSeconds",
    "core.v1.ClusterTrustBundleProjection": "name signerName optional",
    "core.v1.ConfigMap": "immutable",
    "core.v1.ConfigMapEnvSource": "optional",
    "core.v1.ConfigMapKeySelector": "optional",
    "core.v1.ConfigMapProjection": "optional",
    "core.v1.ConfigMapVolumeSource": "defaultMode optional",
    "core.v1.Container": "restartPolicy",
    "core.v1.ContainerStatus": "started stopSignal",
    "core.v1.DownwardAPIVolumeFile": "mode",
    "core.v1.DownwardAPIVolumeSource": "defaultMode",
    "core.v1.EndpointAddress": "nodeName",
    "core.v1.EndpointPort": "appProtocol",
    "core.v1.EphemeralContainerCommon": "restartPolicy",
    "core.v1.FcVolumeSource": "lun",
    "core.v1.GlusterfsPersistentVolumeSource": "endpointsNamespace",
    "core.v1.GrpcAction": "service",
    "core.v1.HostPathVolumeSource": "type",
    "core.v1.IscsiPersistentVolumeSource": "initiatorName",
    "core.v1.IscsiVolumeSource": "initiatorName",
    "core.v1.KeyToPath": "mode",
    "core.v1.Lifecycle": "stopSignal",
    "core.v1.LoadBalancerIngress": "ipMode",
    "core.v1.LocalVolumeSource": "fsType",
    "core.v1.NodeFeatures": "supplementalGroupsPolicy",
    "core.v1.NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts userNamespaces",
    "core.v1.NodeSwapStatus": "capacity",
    "core.v1.PersistentVolumeClaimSpec": "storageClassName volumeMode volumeAttributesClassName",
    "core.v1.PersistentVolumeClaimStatus": "currentVolumeAttributesClassName",
    "core.v1.PersistentVolumeSpec": "volumeMode volumeAttributesClassName",
    "core.v1.PodDnsConfigOption": "value",
    "core.v1.PodResourceClaim": "resourceClaimName resourceClaimTemplateName",
    "core.v1.PodResourceClaimStatus": "resourceClaimName",
    "core.v1.PodSecurityContext": "runAsUser runAsNonRoot fsGroup runAsGroup "
                                  "fsGroupChangePolicy supplementalGroupsPolicy "
                                  "seLinuxChangePolicy",
    "core.v1.PodSpec": "terminationGracePeriodSeconds activeDeadlineSeconds "
                       "automountServiceAccountToken priority shareProcessNamespace "
                       "runtimeClassName enableServiceLinks preemptionPolicy "
                       "setHostnameAsFQDN hostUsers",
    "core.v1.PortStatus": "error",
    "core.v1.Probe": "terminationGracePeriodSeconds",
    "core.v1.ProjectedVolumeSource": "defaultMode",
    "core.v1.SeccompProfile": "localhostProfile",
    "core.v1.Secret": "immutable",
    "core.v1.SecretEnvSource": "optional",
    "core.v1.SecretKeySelector": "optional",
    "core.v1.SecretProjection": "optional",
    "core.v1.SecretVolumeSource": "defaultMode optional",
    "core.v1.SecurityContext": "privileged runAsUser runAsNonRoot readOnlyRootFilesystem "
                               "allowPrivilegeEscalation runAsGroup procMount",
    "core.v1.ServiceAccount": "automountServiceAccountToken",
    "core.v1.ServiceAccountTokenProjection": "expirationSeconds",
    "core.v1.ServicePort": "appProtocol",
    "core.v1.ServiceSpec": "ipFamilyPolicy allocateLoadBalancerNodePorts loadBalancerClass "
                           "internalTrafficPolicy trafficDistribution",
    "core.v1.Toleration": "tolerationSeconds",
    "core.v1.TopologySpreadConstraint": "minDomains nodeAffinityPolicy nodeTaintsPolicy",
    "core.v1.TypedLocalObjectReference": "apiGroup",
    "core.v1.TypedObjectReference": "apiGroup namespace",
    "core.v1.VolumeMount": "mountPropagation recursiveReadOnly",
    "core.v1.VolumeMountStatus": "recursiveReadOnly",
    "core.v1.WindowsSecurityContextOptions": "gmsaCredentialSpecName gmsaCredentialSpec "
                                             "runAsUserName hostProcess",
    "discovery.v1.Endpoint": "hostname nodeName zone",
    "discovery.v1.EndpointConditions": "ready serving terminating",
    "discovery.v1.EndpointPort": "name protocol port appProtocol",
    "networking.v1.IngressClassParametersReference": "apiGroup scope namespace",
    "networking.v1.IngressPortStatus": "error",
    "networking.v1.IngressSpec": "ingressClassName",
    "networking.v1.NetworkPolicyPort": "protocol port endPort",
    "policy.v1.PodDisruptionBudgetSpec": "minAvailable maxUnavailable "
                                         "unhealthyPodEvictionPolicy",
    "scheduling.v1.PriorityClass": "preemptionPolicy",
    "storage.v1.StorageClass": "reclaimPolicy allowVolumeExpansion volumeBindingMode",
    "meta.v1.DeleteOptions": "gracePeriodSeconds orphanDependents propagationPolicy "
                             "ignoreStoreReadErrorWithClusterBreakingPotential",
    "meta.v1.ObjectMeta": "deletionGracePeriodSeconds",
    "meta.v1.OwnerReference": "controller blockOwnerDeletion",
    "meta.v1.Preconditions": "uid resourceVersion",
}.items()}


def snake_to_camel(s):
    parts = s.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def pb_package(rel_dir):
    return "k8s.io." + ".".join(rel_dir.split(os.sep))


# ---------------------------------------------------------------- k8s-pb

ATTR_RE = re.compile(r'#\[prost\((.*)\)\]')
FIELD_RE = re.compile(r'pub (?:r#)?(\w+):\s*(.*),$')


def resolve_type(pkg_dirs, ty):
    """A prost field type -> (full message name) for message types."""
    ty = ty.replace(" ", "").replace(",>", ">")
    for wrap in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                 "::prost::alloc::boxed::Box<"):
        while ty.startswith(wrap):
            ty = ty[len(wrap):-1]
    if ty.startswith("::prost::alloc::collections::BTreeMap<"):
        inner = ty[len("::prost::alloc::collections::BTreeMap<"):-1]
        ty = inner.split(",", 1)[1]
    parts = ty.split("::")
    dirs = list(pkg_dirs)
    if parts[0] == "crate":
        dirs, parts = [], parts[1:]
    while parts and parts[0] == "super":
        dirs.pop()
        parts = parts[1:]
    return "k8s.io." + ".".join(dirs + parts)


def parse_k8s_pb():
    """{full message name: [(number, rust_name, kind, label, type_name)]}"""
    msgs = {}
    for path in sorted(glob.glob(os.path.join(K8S_PB, "**/mod.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), K8S_PB)
        if rel == ".":
            continue
        dirs = rel.split(os.sep)
        pkg = pb_package(rel)
        lines = open(path, encoding="utf-8").read().split("\n")
        i, cur, attr, pending = 0, None, None, ""
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            m = re.match(r'pub struct (\w+) \{$', line)
            if m:
                cur = f"{pkg}.{m.group(1)}"
                msgs[cur] = []
                continue
            if cur is None:
                continue
            if line == "}":
                cur = None
                continue
            if line.startswith("///") or line.startswith("//"):
                continue
            m = ATTR_RE.match(line)
            if m:
                attr = m.group(1)
                pending = ""
                continue
            if attr is not None:
                pending = f"{pending} {line}".strip()
                if not pending.endswith(",") or pending.count("<") != pending.count(">"):
                    continue
                fm = FIELD_RE.match(pending)
                if not fm:
                    sys.exit(f"{path}: cannot parse field {pending!r}")
                rust_name, ty = fm.group(1), fm.group(2)
                num = int(re.search(r'tag = "(\d+)"', attr).group(1))
                mm = re.match(r'btree_map = "string, (\w+)"', attr)
                if mm:
                    label, kind = "map", mm.group(1)
                else:
                    kind = attr.split(",")[0].split("=")[0].strip()
                    label = "rep" if ", repeated" in attr else "one"
                type_name = resolve_type(dirs, ty) if kind == "message" else None
                msgs[cur].append((num, rust_name, kind, label, type_name))
                attr, pending = None, ""
    return msgs


# ---------------------------------------------------------- k8s-openapi


def parse_k8s_openapi():
    """{definition name: {json name: required}}"""
    defs = {}
    for path in glob.glob(os.path.join(K8S_OPENAPI, "**/*.rs"), recursive=True):
        text = open(path, encoding="utf-8").read()
        m = re.match(r'// Generated from definition (\S+)', text)
        if not m:
            continue
        name = m.group(1)
        sm = re.search(r'\npub struct \w+ \{\n(.*?)\n\}\n', text, re.S)
        if not sm:
            continue
        required = {}
        for fm in re.finditer(r'^    pub (\w+): (.*),$', sm.group(1), re.M):
            required[fm.group(1)] = not fm.group(2).startswith("Option<")
        fields = {}
        for fm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
            fields[fm.group(1)] = required.get(fm.group(2), False)
        defs[name] = fields
    return defs


def openapi_name(pb_name, index):
    """k8s.io.api.core.v1.AwsElastic... -> io.k8s.api.core.v1.AWSElastic...
    (prost re-cased acronyms in message names; match case-insensitively)."""
    cand = "io.k8s." + pb_name[len("k8s.io."):]
    return index.get(cand.lower())


# ------------------------------------------------------------- roots


def parse_roots():
    text = open(RESOURCES, encoding="utf-8").read()
    roots = []
    for m in re.finditer(r'res!\(\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)"', text):
        roots.append((m.group(1), m.group(2), m.group(3)))
    if not roots:
        sys.exit("no res!(...) entries found in resources.rs")
    return roots + EXTRA_ROOTS


def group_package(group, version):
    if group == "meta.k8s.io":
        return f"k8s.io.apimachinery.pkg.apis.meta.{version}"
    short = "core" if group == "" else group.split(".")[0]
    return f"k8s.io.api.{short}.{version}"


# ------------------------------------------------------------- build


def json_name(short, rust):
    return (JSON_NAME_EXCEPTIONS.get(f"{short}.{rust}")
            or JSON_NAME_EXCEPTIONS.get(rust) or snake_to_camel(rust))


def build():
    pb = parse_k8s_pb()
    defs = parse_k8s_openapi()
    index = {k.lower(): k for k in defs}
    roots = []
    for group, version, kind in parse_roots():
        name = f"{group_package(group, version)}.{kind}"
        if name not in pb:
            sys.exit(f"no k8s-pb message {name} for {group}/{version} {kind}")
        roots.append((group, version, kind, name))

    errors, notes, used_exceptions = [], [], set()

    def fields_of(name, parent=None):
        """Fields of `name` that k8s-openapi (Kubernetes 1.33) knows, as
        (number, json, kind, label, type name, required); label "inline" for
        embedded structs whose fields JSON writes into the parent. `parent`:
        the k8s-openapi definition an inline message is checked against."""
        oa = parent or openapi_name(name, index)
        if oa is None:
            errors.append(f"{name}: no k8s-openapi definition")
            return []
        oa_fields = defs[oa]
        short = name.rsplit(".", 1)[1]
        out, covered = [], set()
        for (num, rust, kind, label, tn) in sorted(pb[name]):
            if rust in INLINE_FIELDS or f"{short}.{rust}" in INLINE_FIELDS:
                if kind != "message" or label != "one":
                    errors.append(f"{name}.{rust}: inline field is not a message")
                inner = {f[1] for f in fields_of(tn, oa) if f[3] != "inline"}
                if not inner <= set(oa_fields):
                    errors.append(f"{name}.{rust}: inline fields {sorted(inner)} "
                                  f"not all in {oa}")
                covered |= inner
                out.append((num, "", kind, "inline", tn, False))
                continue
            json = json_name(short, rust)
            for key in (f"{short}.{rust}", rust):
                if key in JSON_NAME_EXCEPTIONS:
                    used_exceptions.add(key)
                    break
            if json not in oa_fields:
                notes.append(f"{name}.{rust} ({json}): not in k8s-openapi {oa}; skipped")
                continue
            covered.add(json)
            out.append((num, json, kind, label, tn, oa_fields[json]))
        for j in oa_fields if parent is None else ():
            if j not in covered and j not in ("apiVersion", "kind"):
                errors.append(f"{name}: k8s-openapi field {j!r} has no proto field")
        return out

    # Reachability over the fields k8s-openapi knows.
    reach, todo, seen, table = [], [r[3] for r in roots], set(), {}
    inline_parent = {}
    while todo:
        name = todo.pop()
        if name in seen or name in SPECIAL:
            continue
        seen.add(name)
        reach.append(name)
        table[name] = fields_of(name, inline_parent.get(name))
        for f in table[name]:
            if f[2] == "message":
                if f[4] not in pb:
                    sys.exit(f"{name}: unknown message type {f[4]}")
                if f[3] == "inline" and openapi_name(f[4], index) is None:
                    inline_parent[f[4]] = openapi_name(name, index)
                todo.append(f[4])
    reach.sort()
    ids = {n: i for i, n in enumerate(reach)}

    used_pointers = set()
    out_msgs = []
    for name in reach:
        pkg_key = ".".join(name.split(".")[-3:])  # e.g. core.v1.Pod
        pointers = POINTER_FIELDS.get(pkg_key, set())
        fields = []
        for (num, json, kind, label, tn, required) in table[name]:
            if kind == "message":
                k = SPECIAL.get(tn) or f"Msg({ids[tn]})"
            else:
                k = SCALARS[kind]
            keep = False
            if label == "one" and (kind != "message" or tn.endswith(".IntOrString")):
                if json in pointers:
                    keep = True
                    used_pointers.add(f"{pkg_key}.{json}")
                elif required:
                    keep = True
            fields.append((num, json, k, label, keep))
        out_msgs.append((name, fields))
    for pkg_key, names in POINTER_FIELDS.items():
        for j in names:
            if f"{pkg_key}.{j}" not in used_pointers:
                errors.append(f"POINTER_FIELDS {pkg_key}.{j}: no such scalar field")
    for key, val in JSON_NAME_EXCEPTIONS.items():
        if key not in used_exceptions:
            errors.append(f"JSON_NAME_EXCEPTIONS[{key!r}] is not used")
        elif val == snake_to_camel(key.rsplit(".", 1)[-1]):
            errors.append(f"JSON_NAME_EXCEPTIONS[{key!r}] is the derived name")
    if "-v" in sys.argv[1:]:
        print("\n".join(notes), file=sys.stderr)
    if errors:
        sys.exit("\n".join(["errors:"] + errors))
    return roots, ids, out_msgs


def render(roots, ids, msgs):
    o = []
    o.append("//! Wire schema of the Kubernetes protobuf messages rkube decodes.")
    o.append("//!")
    o.append("//! GENERATED by scripts/gen-proto-table.py from the k8s-pb 0.9.0 crate's")
    o.append("//! message definitions (wire-format facts only: message names, field")
    o.append("//! numbers and types), with JSON names checked against k8s-openapi 0.29.")
    o.append("//! Do not edit; rerun the script.")
    o.append("")
    o.append("use super::schema::Kind::*;")
    o.append("use super::schema::{inline, keep, map, one, rep, Message};")
    o.append("")
    o.append("/// (API group, version, kind, message index) of every decodable kind.")
    o.append(f"pub(super) static ROOTS: [(&str, &str, &str, u16); {len(roots)}] = [")
    for (g, v, k, n) in roots:
        o.append(f'    ("{g}", "{v}", "{k}", {ids[n]}),')
    o.append("];")
    o.append("")
    o.append("/// Every reachable message; `Msg(i)` refers to `MESSAGES[i]`.")
    o.append(f"pub(super) static MESSAGES: [Message; {len(msgs)}] = [")
    for i, (name, fields) in enumerate(msgs):
        o.append(f"    // {i}")
        o.append("    Message {")
        o.append(f'        name: "{name}",')
        if not fields:
            o.append("        fields: &[],")
        else:
            o.append("        fields: &[")
            for (num, json, k, label, keep_zero) in fields:
                fn = "keep" if keep_zero else label
                if label == "inline":
                    o.append(f"            inline({num}, {k}),")
                    continue
                o.append(f'            {fn}({num}, "{json}", {k}),')
            o.append("        ],")
        o.append("    },")
    o.append("];")
    return "\n".join(o) + "\n"


def rustfmt(text):
    exe = shutil.which("rustfmt")
    if not exe:
        return text
    r = subprocess.run([exe, "--edition", "2021", "--emit", "stdout", "--quiet"],
                       input=text, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("rustfmt failed:\n" + r.stderr)
    return r.stdout


def main():
    roots, ids, msgs = build()
    text = rustfmt(render(roots, ids, msgs))
    if "--check" in sys.argv[1:]:
        cur = open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else ""
        if cur != text:
            sys.exit(f"{OUT} is out of date; run scripts/gen-proto-table.py")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUT}: {len(msgs)} messages, {len(roots)} roots")


if __name__ == "__main__":
    main()
