"""Names said right: pronunciations of dataset rows, the shared lexicon, and how each engine
says them (respelling or IPA; see :mod:`.spec`, :mod:`.lexicon`, :mod:`.realize`)."""
