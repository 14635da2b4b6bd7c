//! An engine with its queue: [`Synthesis`] (long text, streamed audio) and [`Transcription`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::RuntimeError;
use crate::chunk::{self, FADE_SECS, GAP_SECS};
use crate::queue::{CancelToken, EngineQueue, QueueConfig, Running};
use crate::types::{
    AudioSink, EngineError, SpeechSynthesizer, SynthesisRequest, SynthesizerInfo, Transcriber,
    TranscriberInfo, Transcript, TranscriptionRequest,
};

/// How long text is cut for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMode {
    /// Whole sentences packed up to the engine's chunk size: fewest joins (whole-file responses).
    Packed,
    /// One sentence per chunk: the first audio comes sooner (streaming responses).
    PerSentence,
}

/// Speaks text of any length with `engine`: splits it ([`ChunkMode`]), synthesizes chunk by chunk, fades each
/// chunk's edges and puts a short pause between chunks. `emit` receives the audio in order, piece by piece, as
/// soon as each piece is final; an error from `emit` (the receiver is gone) stops the work. Blocking: call it
/// from an engine thread or a CLI, never from async code.
pub fn synthesize_long(
    engine: &dyn SpeechSynthesizer,
    req: &SynthesisRequest,
    mode: ChunkMode,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(Vec<f32>) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let info = engine.info();
    let chunks = match mode {
        ChunkMode::Packed => chunk::pack(&req.text, info.max_chunk_chars),
        ChunkMode::PerSentence => chunk::per_sentence(&req.text, info.max_chunk_chars),
    };
    if chunks.is_empty() {
        return Err(EngineError::InvalidRequest("the text is empty".into()));
    }
    let fade = chunk::samples_for(FADE_SECS, info.sample_rate);
    let gap = chunk::samples_for(GAP_SECS, info.sample_rate);
    for (i, text) in chunks.into_iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if i > 0 {
            emit(vec![0.0; gap])?;
        }
        let one = SynthesisRequest {
            text,
            ..req.clone()
        };
        let mut sink = JoinSink {
            pending: None,
            first: true,
            fade,
            cancel,
            emit: &mut *emit,
        };
        engine.synthesize(&one, &mut sink)?;
        sink.finish()?;
    }
    Ok(())
}

/// Holds back the latest piece so the chunk's last samples can be faded out when the chunk ends.
struct JoinSink<'a> {
    pending: Option<Vec<f32>>,
    first: bool,
    fade: usize,
    cancel: &'a CancelToken,
    emit: &'a mut dyn FnMut(Vec<f32>) -> Result<(), EngineError>,
}

impl AudioSink for JoinSink<'_> {
    fn write(&mut self, samples: &[f32]) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if samples.is_empty() {
            return Ok(());
        }
        let mut piece = samples.to_vec();
        if self.first {
            chunk::fade_in(&mut piece, self.fade);
            self.first = false;
        }
        if let Some(prev) = self.pending.replace(piece) {
            (self.emit)(prev)?;
        }
        Ok(())
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl JoinSink<'_> {
    fn finish(mut self) -> Result<(), EngineError> {
        if let Some(mut last) = self.pending.take() {
            chunk::fade_out(&mut last, self.fade);
            (self.emit)(last)?;
        }
        Ok(())
    }
}

/// A synthesizer behind its queue.
#[derive(Clone)]
pub struct Synthesis {
    engine: Arc<dyn SpeechSynthesizer>,
    info: SynthesizerInfo,
    queue: EngineQueue,
}

/// Audio pieces of one request, in order, as the engine produces them. Dropping it cancels the work.
pub struct AudioStream {
    rx: mpsc::Receiver<Result<Vec<f32>, EngineError>>,
    _running: Running<()>,
    /// Rate of every piece.
    pub sample_rate: u32,
}

impl futures::Stream for AudioStream {
    type Item = Result<Vec<f32>, EngineError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl AudioStream {
    /// All remaining audio, joined.
    pub async fn collect_all(mut self) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        while let Some(piece) = self.rx.recv().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }
}

/// Sends an error down the stream if the work ends without saying it finished (an engine panic unwinds
/// through here), so the reader sees a failure rather than a short, clean-looking end.
struct EndGuard {
    tx: mpsc::Sender<Result<Vec<f32>, EngineError>>,
    finished: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.tx.try_send(Err(EngineError::Failed(
                "the engine stopped mid-synthesis".into(),
            )));
        }
    }
}

impl Synthesis {
    /// Starts the engine's threads (`name` names them and the metrics).
    pub fn new(name: &str, engine: Arc<dyn SpeechSynthesizer>, cfg: QueueConfig) -> Self {
        Synthesis {
            info: engine.info(),
            engine,
            queue: EngineQueue::new(name, cfg),
        }
    }

    pub fn info(&self) -> &SynthesizerInfo {
        &self.info
    }

    pub fn queue(&self) -> &EngineQueue {
        &self.queue
    }

    /// Runs the engine's warm-up on one of its threads.
    pub async fn warm_up(&self) -> Result<(), RuntimeError> {
        let engine = self.engine.clone();
        Ok(self.queue.run(move |_| engine.warm_up()).await??)
    }

    /// Queues `req` (any length) and returns once an engine thread has started it; the audio follows on the
    /// stream. Refusal (queue full, deadline) is an error here, before any audio.
    pub async fn stream(
        &self,
        req: SynthesisRequest,
        mode: ChunkMode,
    ) -> Result<AudioStream, RuntimeError> {
        // A few pieces of slack; past that the engine waits for the reader (memory stays bounded).
        let (tx, rx) = mpsc::channel(16);
        let engine = self.engine.clone();
        let running = self
            .queue
            .start(move |cancel: &CancelToken| {
                let mut guard = EndGuard {
                    tx: tx.clone(),
                    finished: false,
                };
                let r = synthesize_long(engine.as_ref(), &req, mode, cancel, &mut |piece| {
                    tx.blocking_send(Ok(piece))
                        .map_err(|_| EngineError::Cancelled)
                });
                guard.finished = true;
                match r {
                    Ok(()) | Err(EngineError::Cancelled) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                    }
                }
            })
            .await?;
        Ok(AudioStream {
            rx,
            _running: running,
            sample_rate: self.info.sample_rate,
        })
    }

    /// Queues `req` and returns all of its audio.
    pub async fn synthesize(
        &self,
        req: SynthesisRequest,
        mode: ChunkMode,
    ) -> Result<Vec<f32>, RuntimeError> {
        Ok(self.stream(req, mode).await?.collect_all().await?)
    }
}

/// A transcriber behind its queue.
#[derive(Clone)]
pub struct Transcription {
    engine: Arc<dyn Transcriber>,
    info: TranscriberInfo,
    queue: EngineQueue,
}

impl Transcription {
    pub fn new(name: &str, engine: Arc<dyn Transcriber>, cfg: QueueConfig) -> Self {
        Transcription {
            info: engine.info(),
            engine,
            queue: EngineQueue::new(name, cfg),
        }
    }

    pub fn info(&self) -> &TranscriberInfo {
        &self.info
    }

    pub fn queue(&self) -> &EngineQueue {
        &self.queue
    }

    pub async fn warm_up(&self) -> Result<(), RuntimeError> {
        let engine = self.engine.clone();
        Ok(self.queue.run(move |_| engine.warm_up()).await??)
    }

    /// Queues `req` and returns its transcript. Dropping the future cancels the work.
    pub async fn transcribe(&self, req: TranscriptionRequest) -> Result<Transcript, RuntimeError> {
        let engine = self.engine.clone();
        Ok(self
            .queue
            .run(move |cancel: &CancelToken| engine.transcribe(&req, &|| cancel.is_cancelled()))
            .await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::VoiceInfo;
    use futures::StreamExt;

    /// A synthesizer that speaks each character as 10 samples of 1.0, in two pieces per call.
    struct Beeper;
    impl SpeechSynthesizer for Beeper {
        fn info(&self) -> SynthesizerInfo {
            SynthesizerInfo {
                kind: "beeper".into(),
                sample_rate: 1000,
                voices: vec![VoiceInfo {
                    id: "b".into(),
                    language: None,
                    description: None,
                }],
                max_chunk_chars: 12,
            }
        }
        fn warm_up(&self) -> Result<(), EngineError> {
            Ok(())
        }
        fn synthesize(
            &self,
            req: &SynthesisRequest,
            out: &mut dyn AudioSink,
        ) -> Result<(), EngineError> {
            if req.voice.as_deref().is_some_and(|v| v != "b") {
                return Err(EngineError::InvalidRequest("unknown voice".into()));
            }
            let n = req.text.chars().count() * 10;
            out.write(&vec![1.0; n / 2])?;
            out.write(&vec![1.0; n - n / 2])?;
            Ok(())
        }
    }

    #[test]
    fn long_text_is_spoken_chunk_by_chunk_with_faded_edges_and_pauses() {
        let mut pieces = Vec::new();
        synthesize_long(
            &Beeper,
            &SynthesisRequest::new("Hello there. General Kenobi!"),
            ChunkMode::Packed,
            &CancelToken::new(),
            &mut |p| {
                pieces.push(p);
                Ok(())
            },
        )
        .unwrap();
        let all: Vec<f32> = pieces.concat();
        // "Hello there." (12) + gap (120) + "General Kenobi!" (15 > 12: split into "General" and "Kenobi!")
        let gap = chunk::samples_for(GAP_SECS, 1000);
        assert_eq!(all.len(), 120 + gap + 70 + gap + 70);
        // Faded at every edge: starts and ends at near-silence, unity in the middle.
        assert!(all[0] < 0.2 && all[119] < 0.2 && all[60] == 1.0);
        assert!(all[120..120 + gap].iter().all(|&s| s == 0.0));
        assert!(all[120 + gap] < 0.2);
    }

    #[tokio::test]
    async fn a_stream_yields_audio_and_an_engine_error_reaches_the_reader() {
        let s = Synthesis::new("beep", Arc::new(Beeper), QueueConfig::default());
        s.warm_up().await.unwrap();
        let audio = s
            .synthesize(SynthesisRequest::new("Hi."), ChunkMode::PerSentence)
            .await
            .unwrap();
        assert_eq!(audio.len(), 30);
        let mut bad = SynthesisRequest::new("Hi.");
        bad.voice = Some("nobody".into());
        let mut stream = s.stream(bad, ChunkMode::PerSentence).await.unwrap();
        match stream.next().await {
            Some(Err(EngineError::InvalidRequest(m))) => assert!(m.contains("voice")),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
        assert!(stream.next().await.is_none());
        let e = s
            .synthesize(SynthesisRequest::new("  "), ChunkMode::Packed)
            .await;
        assert!(matches!(
            e,
            Err(RuntimeError::Engine(EngineError::InvalidRequest(_)))
        ));
    }
}
