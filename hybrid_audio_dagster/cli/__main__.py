import sys

from hybrid_audio_dagster.cli import main

sys.exit(main())
