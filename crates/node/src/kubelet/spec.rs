//! Maps a pod's container onto a [`RunSpec`]: user and groups from the pod
//! and container security contexts (with `runAsNonRoot` checked against
//! the image's user), capabilities, privileged mode, `allowPrivilegeEscalation`,
//! a read-only root filesystem, and cgroup limits from resources (memory
//! limit; CPU quota from the limit and shares from the request, as
//! upstream's kubelet computes them).

use k8s_openapi::api::core::v1::{Container, Pod};
use rkube_api::quantity::Quantity;

use super::backend::{ImageInfo, RunSpec};

/// Upstream's CFS period (100 ms).
pub const CPU_PERIOD: u64 = 100_000;

/// Why a container cannot be configured (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    RunsAsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})")]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    #[error("invalid {resource} quantity {value:?}")]
    Quantity { resource: String, value: String },
}

fn quantity(c: &Container, limits: bool, name: &str) -> Result<Option<Quantity>, SpecError> {
    let res = c.resources.as_ref();
    let map = if limits {
        res.and_then(|r| r.limits.as_ref())
    } else {
        res.and_then(|r| r.requests.as_ref())
    };
    match map.and_then(|m| m.get(name)) {
        None => Ok(None),
        Some(q) => Quantity::parse(&q.0)
            .map(Some)
            .map_err(|_| SpecError::Quantity {
                resource: name.into(),
                value: q.0.clone(),
            }),
    }
}

/// CPU shares for a request in millicores (upstream's MilliCPUToShares:
/// at least 2).
pub fn cpu_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return 2;
    }
    ((milli as u64) * 1024 / 1000).max(2)
}

/// CFS quota for a limit in millicores (upstream: at least 1 ms).
pub fn cpu_quota(milli: i64) -> i64 {
    ((milli * CPU_PERIOD as i64) / 1000).max(1000)
}

/// The image's user as (uid, gid) when numeric; `Err(name)` otherwise.
fn image_user(user: &str) -> Result<(Option<u32>, Option<u32>), String> {
    if user.is_empty() {
        return Ok((None, None));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse::<u32>().map_err(|_| user.to_string())?;
    let gid = match g {
        Some(g) => Some(g.parse::<u32>().map_err(|_| user.to_string())?),
        None => None,
    };
    Ok((Some(uid), gid))
}

/// Fills the security and resource parts of `spec` for `container`.
pub fn apply(
    spec: &mut RunSpec,
    pod: &Pod,
    container: &Container,
    image: &ImageInfo,
) -> Result<(), SpecError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let run_as_user = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let (img_uid, img_gid) = match image_user(&image.user) {
        Ok(v) => v,
        Err(user) if run_as_user.is_none() => {
            if non_root {
                return Err(SpecError::NonNumericUser {
                    user,
                    pod: pod_name,
                    container: container.name.clone(),
                });
            }
            // A named user we cannot resolve: run as root, as a runtime
            // without /etc/passwd lookup would.
            (None, None)
        }
        Err(_) => (None, None),
    };
    let uid = run_as_user.map(|u| u as u32).or(img_uid).unwrap_or(0);
    if non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot {
            pod: pod_name,
            container: container.name.clone(),
        });
    }
    spec.uid = uid;
    spec.gid = run_as_group.map(|g| g as u32).or(img_gid).unwrap_or(0);
    spec.additional_gids = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        spec.additional_gids.push(fs as u32);
    }
    spec.privileged = csc.and_then(|s| s.privileged).unwrap_or(false);
    spec.readonly_rootfs = csc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    spec.no_new_privileges = csc.and_then(|s| s.allow_privilege_escalation) == Some(false);
    if let Some(caps) = csc.and_then(|s| s.capabilities.as_ref()) {
        spec.caps_add = caps.add.clone().unwrap_or_default();
        spec.caps_drop = caps.drop.clone().unwrap_or_default();
    }
    if let Some(m) = quantity(container, true, "memory")? {
        spec.memory_limit = Some(m.value() as i64);
    }
    if let Some(c) = quantity(container, true, "cpu")? {
        spec.cpu_quota = Some(cpu_quota(c.milli_value() as i64));
        spec.cpu_period = Some(CPU_PERIOD);
    }
    // Without a request, upstream uses the limit as the request.
    let request = match quantity(container, false, "cpu")? {
        Some(q) => Some(q),
        None => quantity(container, true, "cpu")?,
    };
    spec.cpu_shares = Some(cpu_shares(
        request.map(|q| q.milli_value() as i64).unwrap_or(0),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use std::collections::BTreeMap;

    fn pod(psc: Option<PodSecurityContext>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.spec = Some(PodSpec {
            security_context: psc,
            ..Default::default()
        });
        p
    }

    #[test]
    fn users_and_non_root() {
        let img = ImageInfo {
            user: "1000:2000".into(),
            ..Default::default()
        };
        let c = Container::default();
        let mut s = RunSpec::default();
        apply(&mut s, &pod(None), &c, &img).unwrap();
        assert_eq!((s.uid, s.gid), (1000, 2000));
        let psc = PodSecurityContext {
            run_as_user: Some(5),
            run_as_non_root: Some(true),
            supplemental_groups: Some(vec![7]),
            ..Default::default()
        };
        let c2 = Container {
            security_context: Some(SecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            name: "c".into(),
            ..Default::default()
        };
        let err = apply(&mut s, &pod(Some(psc.clone())), &c2, &ImageInfo::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"p\", container: c)"
        );
        apply(&mut s, &pod(Some(psc)), &c, &ImageInfo::default()).unwrap();
        assert_eq!((s.uid, s.additional_gids.clone()), (5, vec![7]));
        let named = ImageInfo {
            user: "nginx".into(),
            ..Default::default()
        };
        let psc = PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            apply(&mut s, &pod(Some(psc)), &c, &named),
            Err(SpecError::NonNumericUser { .. })
        ));
    }

    #[test]
    fn security_and_resources() {
        let c = Container {
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("memory".into(), Q("64Mi".into())),
                    ("cpu".into(), Q("500m".into())),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut s = RunSpec::default();
        apply(&mut s, &pod(None), &c, &ImageInfo::default()).unwrap();
        assert!(s.readonly_rootfs && s.no_new_privileges && !s.privileged);
        assert_eq!(s.caps_add, vec!["NET_ADMIN"]);
        assert_eq!(s.caps_drop, vec!["ALL"]);
        assert_eq!(s.memory_limit, Some(64 * 1024 * 1024));
        assert_eq!(s.cpu_quota, Some(50_000));
        assert_eq!(s.cpu_shares, Some(512), "request defaults to the limit");
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_quota(1), 1000);
    }
}
