//! Models Hearth knows by name (`manifest/*.json`): a Hugging Face folder that claims to be one of
//! them must have that model's `config.json` values, so a mislabelled folder is caught before
//! gigabytes are converted.

use serde_json::Value;

use crate::error::{ModelError, Result};

/// Checks that `config_json` has every value of `expected` (a subset of the model's published
/// `config.json`; nested objects are compared key by key, numbers as numbers: 32 equals 32.0).
/// The error names every value that differs.
pub fn check_hf_config(model: &str, config_json: &[u8], expected: &Value) -> Result<()> {
    let mut found: Value = serde_json::from_slice(config_json)
        .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
    // Older configs leave `head_dim` out: transformers then derives it (as `parse_hf_config` does).
    if let Some(obj) = found
        .as_object_mut()
        .filter(|o| !o.contains_key("head_dim"))
    {
        let get = |k: &str| obj.get(k).and_then(Value::as_u64);
        if let (Some(h), Some(n)) = (get("hidden_size"), get("num_attention_heads")) {
            if n > 0 && h % n == 0 {
                obj.insert("head_dim".into(), Value::from(h / n));
            }
        }
    }
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

        // A config without head_dim has the one transformers derives.
        let want = serde_json::json!({ "head_dim": 64 });
        check_hf_config(
            "M",
            br#"{"hidden_size": 2048, "num_attention_heads": 32}"#,
            &want,
        )
        .unwrap();
        assert!(check_hf_config(
            "M",
            br#"{"hidden_size": 2048, "num_attention_heads": 16}"#,
            &want
        )
        .is_err());
    }

    /// The shipped manifest's `hf_config` is what Llama-3.2-1B-Instruct's config.json says, so a
    /// config built from the same values passes and is a valid Llama config; the tiny fixture fails.
    #[test]
    fn the_llama_manifest_accepts_its_own_config_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m: Value = serde_json::from_slice(
            &std::fs::read(root.join("manifest/llama-3.2-1b-instruct.json")).unwrap(),
        )
        .unwrap();
        let want = &m["hf_config"];
        let config = serde_json::to_vec(want).unwrap();
        check_hf_config("Llama-3.2-1B-Instruct", &config, want).unwrap();
        let c = crate::safetensors::parse_hf_config(&config).unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.head_dim),
            (2048, 16, 64)
        );
        assert_eq!((c.num_attention_heads, c.num_key_value_heads), (32, 8));
        assert_eq!((c.vocab_size, c.intermediate_size), (128256, 8192));
        assert!(c.rope_scaling.is_some() && c.tie_word_embeddings);
        let tiny =
            std::fs::read(root.join("tests/fixtures/tiny/tiny-llama3-hf/config.json")).unwrap();
        assert!(check_hf_config("Llama-3.2-1B-Instruct", &tiny, want).is_err());
    }
}
