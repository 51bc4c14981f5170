//! Getting a container ready to start: its image per the pull policy (with
//! ErrImagePull / ImagePullBackOff and upstream's pull events) and its run
//! spec (environment, command, mounts, security, cgroups, log file).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::backend::{MountSpec, RunSpec};
use super::start::next_backoff;
use super::worker::{
    Worker, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use super::{env, hosts, service_env, sources, spec, volumes};

impl Worker {
    /// The local image for container `i`, pulled per its pull policy.
    pub(super) async fn image(
        &mut self,
        i: usize,
        image: &str,
    ) -> Option<super::backend::ImageInfo> {
        let pod = self.pod.clone();
        let name = self.ctrs[i].status.name.clone();
        let policy = self.ctrs[i]
            .spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| rkube_api::defaults::default_pull_policy(image).to_string());
        let present = self.deps.images.get(image).await;
        if policy == "Never" || (policy == "IfNotPresent" && present.is_some()) {
            return match present {
                Some(img) => {
                    self.deps.events.emit(
                        &pod,
                        Some(&name),
                        false,
                        "Pulled",
                        &format!("Container image \"{image}\" already present on machine"),
                    );
                    Some(img)
                }
                None => {
                    let msg = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.deps
                        .events
                        .emit(&pod, Some(&name), true, "ErrImageNeverPull", &msg);
                    self.waiting(i, "ErrImageNeverPull", msg);
                    self.at(Duration::from_secs(10));
                    None
                }
            };
        }
        self.deps.events.emit(
            &pod,
            Some(&name),
            false,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        let secrets = sources::pull_secrets(&self.deps.client, &self.pod).await;
        let started = std::time::Instant::now();
        match self.deps.images.pull(image, &secrets).await {
            Ok(img) => {
                let took = started.elapsed().as_secs_f64();
                self.deps.events.emit(&pod, Some(&name), false, "Pulled", &format!(
                    "Successfully pulled image \"{image}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                    img.size
                ));
                self.ctrs[i].image_backoff = Duration::ZERO;
                Some(img)
            }
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.deps
                    .events
                    .emit(&pod, Some(&name), true, "Failed", &msg);
                self.deps
                    .events
                    .emit(&pod, Some(&name), true, "Failed", "Error: ErrImagePull");
                let reason = if matches!(e, super::backend::PullError::InvalidName(_)) {
                    "InvalidImageName"
                } else {
                    "ErrImagePull"
                };
                self.waiting(i, reason, msg);
                let c = &mut self.ctrs[i];
                c.image_backoff = next_backoff(c.image_backoff);
                c.image_retry_at = Some(Instant::now() + c.image_backoff);
                let at = c.image_retry_at;
                if let Some(at) = at {
                    self.at_instant(at);
                }
                self.deps.events.emit(
                    &pod,
                    Some(&name),
                    false,
                    "BackOff",
                    &format!("Back-off pulling image \"{image}\""),
                );
                None
            }
        }
    }

    pub(super) fn log_path(&self, container: &str, attempt: i32) -> PathBuf {
        self.deps
            .cfg
            .logs_dir
            .join(format!("{}_{}_{}", self.namespace(), self.name(), self.uid))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// The run spec of container `i`; `Err` is a CreateContainerConfigError.
    pub(super) fn run_spec(
        &mut self,
        i: usize,
        c: &Container,
        image: &super::backend::ImageInfo,
    ) -> Result<RunSpec, String> {
        // As upstream: a pod from the API server waits for the first list
        // of Services, so that KUBERNETES_SERVICE_HOST is never missed.
        if !service_env::is_static_pod(&self.pod) && !self.deps.services.synced() {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        self.sources.service_env = self
            .deps
            .services
            .env_for(&self.namespace(), service_env::links_enabled(&self.pod));
        let environment = env::build(&self.pod, c, &self.sources).map_err(|e| e.to_string())?;
        let mut by_source: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (name, source) in environment
            .invalid_names
            .iter()
            .zip(&environment.invalid_sources)
        {
            by_source.entry(source).or_default().push(name);
        }
        for (source, names) in by_source {
            let msg = format!(
                "Keys [{}] from the EnvFrom {source} were skipped since they are considered invalid environment variable names.",
                names.join(", ")
            );
            let pod = self.pod.clone();
            self.deps.events.emit(
                &pod,
                Some(&c.name),
                true,
                "InvalidEnvironmentVariableNames",
                &msg,
            );
        }
        let args = env::process_args(c, &image.entrypoint, &image.cmd, &environment);
        if args.is_empty() {
            return Err("no command specified".into());
        }
        let mut vars: Vec<(String, String)> = image
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        if !vars.iter().any(|(k, _)| k == "PATH") {
            vars.push((
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ));
        }
        vars.push(("HOSTNAME".into(), hosts::hostname(&self.pod)));
        for (k, v) in &environment.vars {
            match vars.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => vars.push((k.clone(), v.clone())),
            }
        }
        let vols = self.volumes.clone().unwrap_or_default();
        let mut mounts = volumes::mounts(c, &vols, &self.pod).map_err(|e| e.to_string())?;
        let covered = |p: &str, m: &[MountSpec]| m.iter().any(|x| x.destination == p);
        for (file, dest) in [
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
            ("hostname", "/etc/hostname"),
        ] {
            if !covered(dest, &mounts) {
                mounts.push(MountSpec {
                    source: self.dir.join(file),
                    destination: dest.into(),
                    read_only: false,
                });
            }
        }
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_file = self.dir.join("termination").join(&c.name);
        let _ = std::fs::create_dir_all(self.dir.join("termination"));
        let _ = std::fs::write(&term_file, b"");
        if !covered(&term_path, &mounts) {
            mounts.push(MountSpec {
                source: term_file,
                destination: term_path,
                read_only: false,
            });
        }
        let restart_count =
            self.ctrs[i].status.restart_count + i32::from(self.ctrs[i].started_once);
        let id = format!("{}-{}-{}", self.uid, c.name, restart_count);
        let mut run = RunSpec {
            id,
            labels: [
                (LABEL_POD_UID.to_string(), self.uid.clone()),
                (LABEL_POD_NAME.to_string(), self.name()),
                (LABEL_POD_NAMESPACE.to_string(), self.namespace()),
                (LABEL_CONTAINER.to_string(), c.name.clone()),
                (LABEL_ATTEMPT.to_string(), restart_count.to_string()),
            ]
            .into(),
            layers: image.layers.clone(),
            args,
            env: vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| {
                    if image.working_dir.is_empty() {
                        "/".into()
                    } else {
                        image.working_dir.clone()
                    }
                }),
            hostname: hosts::hostname(&self.pod),
            netns: self
                .sandbox
                .as_ref()
                .map(|s| s.netns.clone())
                .filter(|p| !p.as_os_str().is_empty()),
            mounts,
            cgroup_parent: pod_cgroup(&self.uid),
            log_path: self.log_path(&c.name, restart_count),
            tty: c.tty.unwrap_or(false),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            ..Default::default()
        };
        spec::apply(&mut run, &self.pod, c, image).map_err(|e| e.to_string())?;
        if let Some(parent) = run.log_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // Keep only the previous attempt's log.
        if restart_count >= 2 {
            let _ = std::fs::remove_file(self.log_path(&c.name, restart_count - 2));
        }
        Ok(run)
    }
}

/// The cgroup (parent of its containers') of the pod with `uid`.
pub(super) fn pod_cgroup(uid: &str) -> String {
    format!("/rkube/pod{uid}")
}
