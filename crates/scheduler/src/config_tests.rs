//! Unit tests of the configuration file: defaulting, expansion, validation.

use super::*;

fn cfg(body: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n{body}"
    ))
}

fn profiles(body: &str) -> Vec<Profile> {
    cfg(body)
        .unwrap()
        .build_profiles(&Handle::default())
        .unwrap()
}

fn names<T: ?Sized + crate::framework::Plugin>(v: &[std::sync::Arc<T>]) -> Vec<&'static str> {
    v.iter().map(|p| p.name()).collect()
}

fn scores(p: &Profile) -> Vec<(&'static str, i64)> {
    p.score.iter().map(|(s, w)| (s.name(), *w)).collect()
}

#[test]
fn an_empty_configuration_is_the_default_profile() {
    let ps = profiles("");
    assert_eq!(ps.len(), 1);
    let d = Profile::default_profile(&Handle::default()).unwrap();
    let p = &ps[0];
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert_eq!(names(&p.filter), names(&d.filter));
    assert_eq!(names(&p.pre_filter), names(&d.pre_filter));
    assert_eq!(scores(p), scores(&d));
    assert!(scores(p).contains(&("TaintToleration", 3)));
    assert_eq!(names(&p.post_filter), vec!["DefaultPreemption"]);
    assert_eq!(names(&p.bind), vec!["DefaultBinder"]);
}

#[test]
fn profiles_disable_enable_and_reweight_plugins() {
    let ps = profiles(
        r#"
percentageOfNodesToScore: 30
profiles:
- schedulerName: default-scheduler
  plugins:
    multiPoint:
      enabled:
      - name: NodeAffinity
        weight: 5
    filter:
      disabled:
      - name: TaintToleration
    score:
      enabled:
      - name: NodeResourcesBalancedAllocation
        weight: 7
- schedulerName: no-scoring
  percentageOfNodesToScore: 60
  plugins:
    score:
      disabled:
      - name: "*"
    postFilter:
      disabled:
      - name: DefaultPreemption
  pluginConfig:
  - name: NodeResourcesFit
    args:
      apiVersion: kubescheduler.config.k8s.io/v1
      kind: NodeResourcesFitArgs
      scoringStrategy:
        type: MostAllocated
"#,
    );
    let (a, b) = (&ps[0], &ps[1]);
    assert!(!names(&a.filter).contains(&"TaintToleration"));
    // Still scored: only its Filter was disabled.
    assert!(scores(a).contains(&("TaintToleration", 3)));
    assert!(scores(a).contains(&("NodeAffinity", 5)));
    // Named at `score`, so it comes first there with its own weight.
    assert_eq!(scores(a)[0], ("NodeResourcesBalancedAllocation", 7));
    assert_eq!(a.percentage_of_nodes_to_score, Some(30));
    assert_eq!(b.scheduler_name, "no-scoring");
    assert!(b.score.is_empty());
    assert!(b.post_filter.is_empty());
    assert!(names(&b.filter).contains(&"TaintToleration"));
    assert_eq!(b.percentage_of_nodes_to_score, Some(60));
}

#[test]
fn bad_configurations_are_rejected_with_the_field() {
    let err = |body: &str| match cfg(body) {
        Ok(c) => c
            .build_profiles(&Handle::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    assert!(err("bogus: 1").contains("unknown field `bogus`"));
    assert!(err("percentageOfNodesToScore: 101").contains("percentageOfNodesToScore"));
    assert!(err("profiles:\n- schedulerName: a\n- schedulerName: a").contains("Duplicate"));
    assert!(err(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: NoSuchPlugin"
    )
    .contains("NoSuchPlugin"));
    // A plugin enabled at a point it does not implement.
    assert!(
        err("profiles:\n- plugins:\n    bind:\n      enabled:\n      - name: NodePorts")
            .contains("does not implement")
    );
    assert!(err(
        "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: Bogus"
    )
    .contains("NodeResourcesFit"));
    assert!(err("leaderElection:\n  leaseDuration: soon").contains("leaseDuration"));
    assert!(matches!(
        Config::parse("apiVersion: v1\nkind: KubeSchedulerConfiguration"),
        Err(ConfigError::ApiVersion(_))
    ));
    assert!(matches!(
        Config::parse("apiVersion: kubescheduler.config.k8s.io/v1\nkind: Pod"),
        Err(ConfigError::Kind(_))
    ));
}

#[test]
fn durations() {
    assert_eq!(
        parse_duration("15s"),
        Some(std::time::Duration::from_secs(15))
    );
    assert_eq!(
        parse_duration("1m30s"),
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        parse_duration("500ms"),
        Some(std::time::Duration::from_millis(500))
    );
    assert_eq!(parse_duration("x"), None);
    assert_eq!(parse_duration(""), None);
    let c = cfg("").unwrap();
    assert!(c.leader_election.leader_elect);
    assert_eq!(c.leader_election.resource_name, "kube-scheduler");
}
