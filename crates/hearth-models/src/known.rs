//! Models Hearth knows by name (`manifest/*.json`): a Hugging Face folder that claims to be one of
//! them must have that model's `config.json` values, so a mislabelled folder is caught before
//! gigabytes are converted.

use serde_json::Value;

use crate::error::{ModelError, Result};

/// Checks that `config_json` has every value of `expected` (a subset of the model's published
/// `config.json`; nested objects are compared key by key, numbers as numbers: 32 equals 32.0).
/// The error names every value that differs.
pub fn check_hf_config(model: &str, config_json: &[u8], expected: &Value) -> Result<()> {
    let found: Value = serde_json::from_slice(config_json)
        .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
    let mut diffs = Vec::new();
    compare("", &found, expected, &mut diffs);
    if diffs.is_empty() {
        return Ok(());
    }
    let said: Vec<String> = diffs
        .iter()
        .map(|(k, f, e)| format!("{k} = {f}, but {model} has {k} = {e}"))
        .collect();
    Err(ModelError::Config(format!(
        "the folder is named as {model}, but its config.json is not that model's: {}",
        said.join("; ")
    )))
}

fn compare(path: &str, found: &Value, expected: &Value, diffs: &mut Vec<(String, Value, Value)>) {
    match (found, expected) {
        (Value::Object(f), Value::Object(e)) => {
            for (k, want) in e {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                compare(&key, f.get(k).unwrap_or(&Value::Null), want, diffs);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => diffs.push((path.to_string(), a.clone(), b.clone())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matching_and_mismatching_configs() {
        let want = serde_json::json!({
            "hidden_size": 2048,
            "rope_scaling": { "factor": 32.0, "rope_type": "llama3" },
            "tie_word_embeddings": true
        });
        let good = br#"{"hidden_size": 2048, "vocab_size": 5,
            "rope_scaling": {"factor": 32, "rope_type": "llama3", "low_freq_factor": 1.0},
            "tie_word_embeddings": true}"#;
        check_hf_config("M", good, &want).unwrap();
        let bad = br#"{"hidden_size": 2048, "rope_scaling": {"factor": 8.0, "rope_type": "llama3"},
            "tie_word_embeddings": true}"#;
        let e = check_hf_config("M", bad, &want).unwrap_err().to_string();
        assert!(e.contains("rope_scaling.factor = 8.0"), "{e}");
        let missing =
            br#"{"hidden_size": 2048, "rope_scaling": {"factor": 32, "rope_type": "llama3"}}"#;
        let e = check_hf_config("M", missing, &want)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tie_word_embeddings = null"), "{e}");
        assert!(check_hf_config("M", b"{nope", &want).is_err());
    }
}
