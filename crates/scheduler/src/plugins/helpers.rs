//! Helpers shared by plugins: the scheduling predicates of
//! [`rkube_api::scheduling`] (re-exported here) and upstream's
//! `helper.DefaultNormalizeScore`.

pub use rkube_api::scheduling::*;

use crate::framework::NodeScore;

// ------------------------------------------------------------- scoring

/// Scales scores from `0..=max(scores)` to `0..=max_priority`, and with
/// `reverse` subtracts them from `max_priority` (upstream
/// `helper.DefaultNormalizeScore`). When every score is 0 (or less), they
/// all become `max_priority` if reversed and stay as they are otherwise.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).fold(0, i64::max);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| s.score = max_priority);
        }
        return;
    }
    for s in scores {
        s.score = max_priority.saturating_mul(s.score) / max;
        if reverse {
            s.score = max_priority - s.score;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
        PreferredSchedulingTerm, Taint, Toleration,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use std::collections::BTreeMap;

    fn opt(s: &str) -> Option<String> {
        (!s.is_empty()).then(|| s.to_string())
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let (key, operator, value, effect) = (opt(key), opt(op), opt(value), opt(effect));
        Toleration {
            key,
            operator,
            value,
            effect,
            toleration_seconds: None,
        }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: opt(value),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn strings(vals: &[&str]) -> Option<Vec<String>> {
        (!vals.is_empty()).then(|| vals.iter().map(|v| v.to_string()).collect())
    }

    fn req(key: &str, op: &str, vals: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: strings(vals),
        }
    }

    fn exprs(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(rs),
            match_fields: None,
        }
    }

    fn fields(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(rs),
        }
    }

    #[test]
    fn toleration_matching() {
        let kv = taint("k", "v", "NoSchedule");
        // "key operator value effect" against k=v:NoSchedule, "-" for unset;
        // a leading "!" means not tolerated.
        let cases = "k Equal v NoSchedule; k - v -; !k Equal w NoSchedule; \
            !k Equal v NoExecute; !other Exists - -; k Exists - NoSchedule; - Exists - -; \
            !- Exists - NoExecute; !k Gt v -";
        for c in cases.split("; ") {
            let (want, c) = c.strip_prefix('!').map_or((true, c), |c| (false, c));
            let f: Vec<&str> = c
                .split(' ')
                .map(|f| if f == "-" { "" } else { f })
                .collect();
            assert_eq!(tolerates(&tol(f[0], f[1], f[2], f[3]), &kv), want, "{c}");
        }
        let empty_values = tol("k", "Equal", "", "");
        assert!(tolerates(&empty_values, &taint("k", "", "NoExecute")));
    }

    #[test]
    fn untolerated_taint_respects_filter() {
        let taints = vec![
            taint("soft", "", "PreferNoSchedule"),
            taint("a", "1", "NoSchedule"),
            taint("b", "2", "NoExecute"),
        ];
        let tols = vec![tol("a", "Equal", "1", "")];
        let found = find_untolerated_taint(&taints, &tols, is_do_not_schedule_taint);
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
        let all = vec![tol("", "Exists", "", "")];
        assert!(find_untolerated_taint(&taints, &all, |_| true).is_none());
        assert!(find_untolerated_taint(&taints, &[], |t| t.effect == "Nope").is_none());
    }

    /// Parses `"key Op v1,v2"`; a leading `!` means "expect no match".
    fn case(c: &str) -> (String, String, Vec<&str>, bool) {
        let (want, c) = c.strip_prefix('!').map_or((true, c), |c| (false, c));
        let mut it = c.split_whitespace();
        let (k, op) = (it.next().unwrap(), it.next().unwrap());
        let vals = it.next().map_or(vec![], |v| v.split(',').collect());
        (k.into(), op.into(), vals, want)
    }

    #[test]
    fn label_expression_operators() {
        let n = node("n")
            .label("zone", "a")
            .label("gen", "5")
            .label("txt", "x")
            .build();
        // A "!" means no match; the last six do not parse, so match nothing.
        let cases = "zone In a,b; !zone In b; !missing In a; zone NotIn b; !zone NotIn a; \
            missing NotIn a; zone Exists; !missing Exists; missing DoesNotExist; \
            !zone DoesNotExist; gen Gt 4; !gen Gt 5; gen Lt 6; !gen Lt 5; gen Gt -1; \
            !txt Gt 1; !missing Lt 9; !gen Gt x; !gen Gt 1,2; !zone In; !missing NotIn; \
            !zone Exists a; !zone Equals a";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            let term = exprs(vec![req(&k, &op, &vals)]);
            assert_eq!(node_selector_term_matches(&term, &n), want, "{c}");
        }
        assert!(check_node_selector_term(&exprs(vec![req("g", "Lt", &["z"])])).is_err());
    }

    #[test]
    fn term_and_selector_combination() {
        let n = node("n1").label("zone", "a").label("disk", "ssd").build();
        let both = exprs(vec![req("zone", "In", &["a"]), req("disk", "In", &["ssd"])]);
        let one_off = exprs(vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])]);
        assert!(node_selector_term_matches(&both, &n));
        assert!(!node_selector_term_matches(&one_off, &n), "ANDed");
        let empty = NodeSelectorTerm::default();
        assert!(
            !node_selector_term_matches(&empty, &n),
            "empty term: nothing"
        );
        let sel = |node_selector_terms| NodeSelector {
            node_selector_terms,
        };
        assert!(node_selector_matches(&sel(vec![one_off.clone(), both]), &n));
        assert!(!node_selector_matches(&sel(vec![one_off, empty]), &n));
        assert!(!node_selector_matches(&sel(vec![]), &n));
    }

    #[test]
    fn match_fields_on_node_name() {
        let n = node("n1").label("zone", "a").build();
        let m = |t: NodeSelectorTerm| node_selector_term_matches(&t, &n);
        // Exactly one value, only In/NotIn.
        let cases = "metadata.name In n1; !metadata.name In n2; metadata.name NotIn n2; \
            !metadata.name NotIn n1; !metadata.name In n1,n2; !metadata.name Exists";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            assert_eq!(m(fields(vec![req(&k, &op, &vals)])), want, "{c}");
        }
        // Fields and expressions are ANDed.
        let mut t = fields(vec![req(NODE_NAME_FIELD, "In", &["n1"])]);
        t.match_expressions = Some(vec![req("zone", "In", &["b"])]);
        assert!(!m(t.clone()));
        t.match_expressions = Some(vec![req("zone", "In", &["a"])]);
        assert!(m(t));
    }

    #[test]
    fn pod_selector_and_required_affinity() {
        let n = node("n1").label("zone", "a").build();
        let mut p = pod("p").build();
        let m = |p: &Pod| pod_matches_node_selector_and_affinity(p, &n);
        assert!(m(&p));
        let zone = |v: &str| Some(BTreeMap::from([("zone".to_string(), v.to_string())]));
        p.spec.as_mut().unwrap().node_selector = zone("a");
        assert!(m(&p));
        let set_required = |p: &mut Pod, node_selector_terms| {
            let required = Some(NodeSelector {
                node_selector_terms,
            });
            p.spec.as_mut().unwrap().affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: required,
                    ..Default::default()
                }),
                ..Default::default()
            });
        };
        set_required(&mut p, vec![exprs(vec![req("zone", "NotIn", &["a"])])]);
        assert!(!m(&p));
        set_required(&mut p, vec![exprs(vec![req("zone", "Exists", &[])])]);
        assert!(m(&p));
        set_required(&mut p, vec![]);
        assert!(!m(&p), "no terms: nothing");
        set_required(&mut p, vec![exprs(vec![req("zone", "Exists", &[])])]);
        p.spec.as_mut().unwrap().node_selector = zone("b");
        assert!(!m(&p), "selector ANDed");
    }

    #[test]
    fn preferred_scores_sum_weights() {
        let n = node("n1").label("zone", "a").label("disk", "ssd").build();
        let pref = |weight, preference| PreferredSchedulingTerm { weight, preference };
        let terms = vec![
            pref(5, exprs(vec![req("zone", "In", &["a"])])),
            pref(7, exprs(vec![req("disk", "In", &["ssd"])])),
            pref(11, exprs(vec![req("disk", "In", &["hdd"])])),
            pref(13, NodeSelectorTerm::default()),
        ];
        assert_eq!(preferred_terms_score(&terms, &n), 12);
        assert!(check_preferred_terms(&terms).is_ok());
        let bad = vec![pref(1, exprs(vec![req("x", "Gt", &[])]))];
        assert!(check_preferred_terms(&bad).is_err());
        let ignored = vec![pref(0, exprs(vec![req("x", "Gt", &[])]))];
        assert!(check_preferred_terms(&ignored).is_ok());
    }

    #[test]
    fn label_selectors() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let sel = |ml: &[(&str, &str)], me: &[(&str, &str, &[&str])]| LabelSelector {
            match_labels: (!ml.is_empty()).then(|| {
                ml.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            match_expressions: (!me.is_empty()).then(|| {
                me.iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: strings(vals),
                    })
                    .collect()
            }),
        };
        let empty = LabelSelector::default();
        assert!(label_selector_matches(&empty, &labels));
        assert!(label_selector_matches(&empty, &BTreeMap::new()));
        assert!(!label_selector_opt_matches(None, &labels));
        assert!(label_selector_opt_matches(
            Some(&sel(&[("app", "web")], &[])),
            &labels
        ));
        assert!(!label_selector_matches(
            &sel(&[("app", "db")], &[]),
            &labels
        ));
        assert!(!label_selector_matches(
            &sel(&[("tier", "web")], &[]),
            &labels
        ));
        // A "!" means no match; the last three are invalid, so match nothing.
        let cases = "app In web,db; !app In db; app NotIn db; !app NotIn web; tier NotIn web; \
            app Exists; !tier Exists; tier DoesNotExist; !app DoesNotExist; !app In; \
            !tier DoesNotExist x; !app Gt 1";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            let s = sel(&[], &[(&k, &op, &vals)]);
            assert_eq!(label_selector_matches(&s, &labels), want, "{c}");
        }
        // matchLabels and matchExpressions are ANDed.
        let both = sel(&[("app", "web")], &[("tier", "Exists", &[])]);
        assert!(!label_selector_matches(&both, &labels));
    }

    #[test]
    fn parsed_selectors_match_like_typed_ones() {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]);
        let expr = |k: &str, op: &str, vals: &[&str]| LabelSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: strings(vals),
        };
        let typed = |me: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            match_expressions: Some(me),
        };
        for (me, want) in [
            (vec![expr("tier", "In", &["front", "back"])], true),
            (vec![expr("tier", "NotIn", &["front"])], false),
            (vec![expr("zone", "NotIn", &["a"])], true),
            (vec![expr("tier", "Exists", &[])], true),
            (vec![expr("zone", "DoesNotExist", &[])], true),
            (vec![expr("tier", "DoesNotExist", &[])], false),
        ] {
            let sel = typed(me);
            let parsed = Selector::parse(Some(&sel)).unwrap();
            assert_eq!(parsed.matches(&labels), want, "{sel:?}");
            assert_eq!(label_selector_matches(&sel, &labels), want);
            assert!(!parsed.is_empty());
        }
        for bad in [
            expr("a", "In", &[]),
            expr("a", "Exists", &["x"]),
            expr("a", "Gt", &["1"]),
        ] {
            assert!(Selector::parse(Some(&typed(vec![bad]))).is_err());
        }
        // Null: nothing, also after adding; empty: everything.
        let mut nothing = Selector::parse(None).unwrap();
        assert!(!nothing.matches(&labels) && !nothing.is_empty());
        nothing.add(LabelRequirement::equals("app", "web"));
        assert_eq!(nothing, Selector::Nothing);
        let mut all = Selector::parse(Some(&LabelSelector::default())).unwrap();
        assert!(all.is_empty() && all.matches(&BTreeMap::new()));
        all.add_all(&Selector::from_set(&BTreeMap::from([(
            "app".to_string(),
            "db".to_string(),
        )])));
        assert!(!all.matches(&labels) && !all.is_empty());
        assert!(Selector::from_set(&BTreeMap::new()).is_empty());
    }

    fn normalized(v: &[i64], reverse: bool) -> Vec<i64> {
        let mut s: Vec<NodeScore> = v
            .iter()
            .map(|&score| NodeScore {
                name: "n".into(),
                score,
            })
            .collect();
        default_normalize_score(100, reverse, &mut s);
        s.iter().map(|s| s.score).collect()
    }

    #[test]
    fn normalize_scores() {
        assert_eq!(normalized(&[0, 1, 2, 4], false), vec![0, 25, 50, 100]);
        assert_eq!(normalized(&[0, 1, 3], true), vec![100, 67, 0]);
        assert_eq!(normalized(&[0, 0], true), vec![100, 100]);
        assert_eq!(normalized(&[0, 0], false), vec![0, 0]);
        assert!(normalized(&[], true).is_empty());
    }
}
