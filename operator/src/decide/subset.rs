//! "Does the live object already say everything we would apply?" — the check that makes a
//! reconcile with nothing to change make no writes.
//!
//! The desired object is a partial object (only the fields we own); the live one has defaults,
//! status and other managers' fields on top. `contains(live, desired)` is true when every field
//! of `desired` is in `live` with the same value. Objects are compared field by field; lists must
//! have the same length and match element-wise (our lists are ordered by construction).

use serde_json::Value;

/// True when `live` contains every field of `desired` with an equal value.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => contains(lv, dv),
            // A desired null or empty collection is satisfied by an absent field.
            None => is_empty(dv),
        }),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extra_live_fields_are_fine() {
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}}, "status": {"ready": 1}});
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn changed_or_missing_fields_are_not() {
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(!contains(&live, &json!({"spec": {"replicas": 3}})));
        assert!(!contains(&live, &json!({"spec": {"minReplicas": 3}})));
        assert!(!contains(
            &live,
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(contains(&live, &json!({"spec": {"ports": [{"port": 80}]}})));
    }

    #[test]
    fn absent_empty_values_match_and_numbers_compare_by_value() {
        let live = json!({"spec": {"n": 1.0}});
        assert!(contains(
            &live,
            &json!({"spec": {"n": 1, "selector": {}, "list": [], "x": null}})
        ));
    }
}
