"""TTS engines behind one small interface (:class:`~.base.TTSEngine`)."""
