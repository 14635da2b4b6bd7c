//! Re-encodes a CTranslate2 Whisper `model.bin` with int8 weights (as CTranslate2's "int8_float32"
//! conversion does), e.g. to carry tiny.en (75 MB in float16) to a machine in half the size.
//!
//!     cargo run --release -p vox-whisper --example ct2_int8 -- SRC/model.bin DST/model.bin

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, src, dst] = args.as_slice() else {
        eprintln!("usage: ct2_int8 SRC/model.bin DST/model.bin");
        std::process::exit(2);
    };
    vox_whisper::ct2::quantize_int8(src.as_ref(), dst.as_ref()).expect("quantize");
}
