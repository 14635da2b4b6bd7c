//! espeak-ng's text-to-phonemes call, through a small hand-written FFI to `libespeak-ng.so.1` loaded at run
//! time.
//!
//! Why no crate: the espeak-ng crates either generate bindings with bindgen (libclang and the -dev headers at
//! build time) or compile espeak-ng from source with cmake; vox needs four functions. Loading the library at
//! run time (libloading) keeps the workspace building and testing where espeak-ng is absent, needs no
//! `libespeak-ng-dev`, and turns a missing library into an error instead of a link failure.
//!
//! espeak-ng keeps its state in globals (the voice, the text decoder, a look-ahead character between clauses)
//! and is not thread-safe, so every call goes through one process-wide mutex.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock};

use crate::error::PiperError;

// From espeak-ng's speak_lib.h.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// Without it espeak_Initialize calls exit() when its data is missing.
const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
const ESPEAK_CHARS_AUTO: c_int = 0;
/// `phonememode` bit 1: IPA symbols (as piper asks for them).
const PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;

/// Library names tried in order unless `VOX_ESPEAK_LIB` names one.
const LIB_NAMES: [&str; 3] = [
    "libespeak-ng.so.1",
    "libespeak-ng.so",
    "libespeak-ng.1.dylib",
];

type SetVoiceByName = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemes = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;

struct Espeak {
    set_voice: SetVoiceByName,
    text_to_phonemes: TextToPhonemes,
    voice: Option<String>,
    /// Keeps the function pointers above valid.
    _lib: libloading::Library,
}

// The raw function pointers are only used under the mutex.
unsafe impl Send for Espeak {}

/// One piece of text espeak-ng phonemised in one call: a clause, as espeak splits text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawClause {
    /// IPA phonemes as espeak-ng returns them (words separated by spaces).
    pub phonemes: String,
    /// The source text the call consumed, including the character espeak read ahead (see [`clauses`]).
    pub consumed: String,
    /// Whether this was the last call for the text (espeak set the pointer to null).
    pub last: bool,
}

fn espeak() -> Result<&'static Mutex<Espeak>, PiperError> {
    static ESPEAK: OnceLock<Result<Mutex<Espeak>, PiperError>> = OnceLock::new();
    ESPEAK
        .get_or_init(|| load().map(Mutex::new))
        .as_ref()
        .map_err(Clone::clone)
}

fn load() -> Result<Espeak, PiperError> {
    let names: Vec<String> = match std::env::var("VOX_ESPEAK_LIB") {
        Ok(v) if !v.is_empty() => vec![v],
        _ => LIB_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    let mut errors = Vec::new();
    let lib = names
        .iter()
        // SAFETY: loading espeak-ng runs no initialisers with preconditions.
        .find_map(|n| match unsafe { libloading::Library::new(n) } {
            Ok(l) => Some(l),
            Err(e) => {
                errors.push(format!("{n}: {e}"));
                None
            }
        })
        .ok_or_else(|| {
            PiperError::Espeak(format!(
                "cannot load libespeak-ng ({}); install it (Debian: apt-get install libespeak-ng1 espeak-ng-data) \
                 or set VOX_ESPEAK_LIB to the library file",
                errors.join("; ")
            ))
        })?;
    let sym =
        |e: libloading::Error| PiperError::Espeak(format!("libespeak-ng lacks a symbol: {e}"));
    // SAFETY: the signatures are those of speak_lib.h.
    let (initialize, set_voice, text_to_phonemes) = unsafe {
        let init: unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int =
            *lib.get(b"espeak_Initialize\0").map_err(sym)?;
        let set_voice: SetVoiceByName = *lib.get(b"espeak_SetVoiceByName\0").map_err(sym)?;
        let ttp: TextToPhonemes = *lib.get(b"espeak_TextToPhonemes\0").map_err(sym)?;
        (init, set_voice, ttp)
    };
    // A null data path lets espeak use $ESPEAK_DATA_PATH or its built-in location, as the espeak-ng CLI does.
    // SAFETY: called once, before any other espeak call (the OnceLock guarantees both).
    let rate = unsafe {
        initialize(
            AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            std::ptr::null(),
            ESPEAK_INITIALIZE_DONT_EXIT,
        )
    };
    if rate <= 0 {
        return Err(PiperError::Espeak(format!(
            "espeak_Initialize failed ({rate}): is espeak-ng-data installed (or ESPEAK_DATA_PATH set)?"
        )));
    }
    Ok(Espeak {
        set_voice,
        text_to_phonemes,
        voice: None,
        _lib: lib,
    })
}

/// Runs `text` through `espeak_TextToPhonemes` (IPA) with `voice`, one call per clause as piper does.
///
/// Stock espeak-ng (1.51, Debian 12) does not report how a clause ended (piper's fork adds
/// `espeak_TextToPhonemesWithTerminator`), so each clause also carries the text the call consumed: espeak
/// advances the text pointer past the clause's punctuation, the spaces after it, and one character it read
/// ahead, which it then carries into the next call. Callers read the terminator from that text.
pub fn clauses(voice: &str, text: &str) -> Result<Vec<RawClause>, PiperError> {
    let text = CString::new(text.replace('\0', " ")).expect("NULs were replaced");
    let bytes = text.as_bytes();
    let mut es = espeak()?
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if es.voice.as_deref() != Some(voice) {
        let cvoice = CString::new(voice)
            .map_err(|_| PiperError::Espeak(format!("bad espeak voice name {voice:?}")))?;
        // SAFETY: a valid C string; espeak is initialised and locked.
        let rc = unsafe { (es.set_voice)(cvoice.as_ptr()) };
        if rc != EE_OK {
            es.voice = None;
            return Err(PiperError::Espeak(format!(
                "espeak-ng has no voice {voice:?} (error {rc})"
            )));
        }
        es.voice = Some(voice.to_string());
    }
    let base = bytes.as_ptr() as usize;
    let mut ptr: *const c_void = bytes.as_ptr().cast();
    let mut out = Vec::new();
    while !ptr.is_null() {
        let start = ptr as usize - base;
        // SAFETY: `ptr` points into the NUL-terminated `text`, which outlives the loop; espeak sets it to the
        // next clause or to null at the end.
        let phonemes = unsafe {
            let p = (es.text_to_phonemes)(&mut ptr, ESPEAK_CHARS_AUTO, PHONEMES_IPA);
            if p.is_null() {
                String::new()
            } else {
                // The result lives in a static buffer of espeak's: copy it before the next call.
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let end = if ptr.is_null() {
            bytes.len()
        } else {
            (ptr as usize - base).min(bytes.len())
        };
        if end < start {
            return Err(PiperError::Espeak(
                "espeak-ng moved backwards in the text".into(),
            ));
        }
        out.push(RawClause {
            phonemes,
            consumed: String::from_utf8_lossy(&bytes[start..end]).into_owned(),
            last: ptr.is_null(),
        });
    }
    Ok(out)
}
