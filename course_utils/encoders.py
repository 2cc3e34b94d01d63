"""Run frozen image and audio encoders over a data set in batches.

The lessons show one forward pass by hand first; these helpers then embed a
whole split with a progress bar. Text has its own helper,
:func:`course_utils.text.encode_texts`.
"""

import numpy as np

IMAGE_POOLING = ("cls", "mean", "pooler")


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return batch_size


def embed_images(images, processor, model, pooling: str = "cls", batch_size: int = 64,
                 show_progress_bar: bool = True) -> np.ndarray:
    """Embed images with a ViT-style encoder.

    Args:
        images: Non-empty list of PIL images; grayscale ones are converted to RGB
            first, because vision transformers expect three channels.
        processor: The model's image processor (resizes, rescales, normalises).
        model: A ``ViTModel`` (or any model returning ``last_hidden_state`` of
            shape ``(batch, 1 + patches, hidden)`` with a CLS token first).
        pooling: ``"cls"`` (the CLS token), ``"mean"`` (average of the patch
            tokens) or ``"pooler"`` (the model's ``pooler_output``).
        batch_size: Images per forward pass.
        show_progress_bar: Show a ``tqdm`` bar.

    Returns:
        ``(n, hidden)`` float32 array.
    """
    import torch
    from tqdm.auto import tqdm

    images = list(images)
    if not images:
        raise ValueError("images is empty: pass at least one image.")
    if pooling not in IMAGE_POOLING:
        raise ValueError(f"Unknown pooling {pooling!r}. Valid choices: {', '.join(IMAGE_POOLING)}.")
    batch_size = _check_batch_size(batch_size)
    device = next(model.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="Embedding images",
                      disable=not show_progress_bar):
        batch = [image.convert("RGB") for image in images[start : start + batch_size]]
        inputs = processor(images=batch, return_tensors="pt").to(device)
        with torch.inference_mode():
            outputs = model(**inputs)
        if pooling == "cls":
            pooled = outputs.last_hidden_state[:, 0]
        elif pooling == "mean":
            pooled = outputs.last_hidden_state[:, 1:].mean(dim=1)
        else:
            if outputs.pooler_output is None:
                raise ValueError("This model has no pooler; use pooling='cls' or 'mean'.")
            pooled = outputs.pooler_output
        chunks.append(pooled.float().cpu().numpy())
    return np.concatenate(chunks)


def embed_audio(waveforms, feature_extractor, model, sample_rate: int, batch_size: int = 32,
                layer: int = -1, show_progress_bar: bool = True) -> np.ndarray:
    """Embed audio clips with a Wav2Vec2-style encoder by mean-pooling its frames.

    Args:
        waveforms: Non-empty list of 1-D float arrays (mono, in [-1, 1]).
        feature_extractor: The model's feature extractor.
        model: A ``Wav2Vec2Model`` (or any model returning ``hidden_states``).
        sample_rate: Rate of ``waveforms`` in Hz; it must equal the extractor's
            ``sampling_rate`` (resample first with ``course_utils.data.audio.resample``).
        batch_size: Clips per forward pass.
        layer: Which hidden layer to pool; -1 is the last, 0 the input to the transformer.
        show_progress_bar: Show a ``tqdm`` bar.

    Returns:
        ``(n, hidden)`` float32 array.
    """
    import torch
    from tqdm.auto import tqdm

    waveforms = [np.asarray(w, dtype=np.float32) for w in waveforms]
    if not waveforms:
        raise ValueError("waveforms is empty: pass at least one clip.")
    bad = [i for i, w in enumerate(waveforms) if w.ndim != 1]
    if bad:
        raise ValueError(f"waveforms[{bad[0]}] has shape {waveforms[bad[0]].shape}; pass mono 1-D arrays.")
    expected = feature_extractor.sampling_rate
    if sample_rate != expected:
        raise ValueError(
            f"The clips are at {sample_rate} Hz but the model expects {expected} Hz; resample them first, "
            f"e.g. course_utils.data.audio.resample(clip, {sample_rate}, {expected})."
        )
    batch_size = _check_batch_size(batch_size)
    device = next(model.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(waveforms), batch_size), desc="Embedding audio",
                      disable=not show_progress_bar):
        batch = waveforms[start : start + batch_size]
        inputs = feature_extractor(batch, sampling_rate=sample_rate, padding=True,
                                   return_attention_mask=True, return_tensors="pt").to(device)
        sample_mask = inputs.pop("attention_mask")
        # Group-norm models such as wav2vec2-base expect zero padding and no mask,
        # and the extractor's return_attention_mask setting records which kind this is.
        if feature_extractor.return_attention_mask:
            inputs["attention_mask"] = sample_mask
        with torch.inference_mode():
            hidden = model(**inputs, output_hidden_states=True).hidden_states[layer]
        # Average only frames that cover real samples, not padding. The method is
        # private in transformers 5.25 but is how Wav2Vec2 maps samples to frames.
        frame_mask = model._get_feature_vector_attention_mask(hidden.shape[1], sample_mask)
        weights = frame_mask.unsqueeze(-1).to(hidden.dtype)
        chunks.append(((hidden * weights).sum(1) / weights.sum(1)).float().cpu().numpy())
    return np.concatenate(chunks)
