"""One long-lived METEOR 1.5 process that scores many (candidate, references) pairs in batches.

It runs pycocoevalcap's ``meteor-1.5.jar`` with the command line of DenseCap's
``eval/meteor_bridge.py`` (``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``). DenseCap
sends, per pair, ``SCORE ||| ref_1 ||| ... ||| ref_n ||| candidate`` and then ``EVAL ||| stats``
and keeps the second answer (the aggregate over that one segment). METEOR's aggregate over a single
segment equals that segment's score, so here many ``stats`` go into one ``EVAL`` line and the
per-segment answers are kept: the same numbers, without a round trip per pair. Lines are written
by a thread while the answers are read, so a large batch cannot dead-lock on full pipes.

Text is cleaned before it is sent: whitespace (newlines included: a raw newline would split a
command in two and hang the process) is collapsed to single spaces and the field separator ``|||``
is removed, from candidates (as DenseCap does) and from references (DenseCap did not need to).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence

import pycocoevalcap.meteor.meteor as _pycocoevalcap_meteor

from .java import require_java

METEOR_DIR = os.path.dirname(os.path.abspath(_pycocoevalcap_meteor.__file__))
METEOR_JAR = os.path.join(METEOR_DIR, "meteor-1.5.jar")
# DenseCap's METEOR flags: English, normalised (lower-cased, tokenised) text.
METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")
# Segment statistics per EVAL line (measured fastest among 100 / 1,000 / 20,000).
EVAL_CHUNK = 100


def clean_for_meteor(text: str) -> str:
    """Collapse whitespace to single spaces and drop METEOR's ``|||`` field separator."""
    return " ".join(text.replace("|||", " ").split())


class MeteorError(RuntimeError):
    """The METEOR process failed or answered something unexpected."""


class MeteorScorer:
    """A running METEOR 1.5 process; :meth:`score` returns one METEOR score per pair.

    Thread-safe (one batch at a time). Close it with :meth:`close` or use it as a context manager.
    """

    def __init__(self, jar: str = METEOR_JAR, max_memory: str = "2G") -> None:
        java = require_java("METEOR 1.5")
        if not os.path.isfile(jar):
            raise FileNotFoundError(f"METEOR jar not found: {jar} (it ships with pycocoevalcap)")
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [java, "-jar", f"-Xmx{max_memory}", os.path.basename(jar), *METEOR_ARGS],
            cwd=os.path.dirname(jar),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def _exchange(self, lines: Iterable[str], answers_per_line: Sequence[int]) -> list[str]:
        """Write ``lines`` (from a thread) while reading ``sum(answers_per_line)`` answers."""
        error: list[BaseException] = []

        def write() -> None:
            try:
                for line in lines:
                    self._proc.stdin.write(line.encode("utf-8") + b"\n")
                self._proc.stdin.flush()
            except BaseException as e:  # a broken pipe is reported by the reader below
                error.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        answers = []
        for count in answers_per_line:
            for _ in range(count):
                answer = self._proc.stdout.readline()
                if not answer:
                    writer.join(timeout=5)
                    raise MeteorError(
                        f"METEOR exited (code {self._proc.poll()}) while scoring; its stderr:\n"
                        f"{self._stderr_tail()}"
                    )
                answers.append(answer.decode("utf-8").strip())
        writer.join()
        if error:
            raise MeteorError(f"writing to METEOR failed: {error[0]!r}")
        return answers

    def score(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """METEOR of each ``(candidate, references)`` pair, in order (each needs >= 1 reference)."""
        if not pairs:
            return []
        score_lines = []
        for i, (candidate, references) in enumerate(pairs):
            if isinstance(references, str) or not references:
                raise ValueError(f"pair {i}: references must be a non-empty list of strings")
            fields = [
                "SCORE",
                *(clean_for_meteor(r) for r in references),
                clean_for_meteor(candidate),
            ]
            score_lines.append(" ||| ".join(fields))
        with self._lock:
            if not self.alive:
                raise MeteorError(
                    f"the METEOR process is not running; its stderr:\n{self._stderr_tail()}"
                )
            stats = self._exchange(score_lines, [1] * len(score_lines))
            chunks = [stats[i : i + EVAL_CHUNK] for i in range(0, len(stats), EVAL_CHUNK)]
            eval_lines = ["EVAL ||| " + " ||| ".join(chunk) for chunk in chunks]
            # Each EVAL answers one score per segment, then the chunk's aggregate (dropped).
            answers = self._exchange(eval_lines, [len(c) + 1 for c in chunks])
        scores = []
        position = 0
        for chunk in chunks:
            try:
                scores.extend(float(a) for a in answers[position : position + len(chunk)])
            except ValueError as e:
                raise MeteorError(f"unexpected METEOR answer: {e}") from e
            position += len(chunk) + 1
        return scores

    def close(self) -> None:
        with self._lock:
            if self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._stderr.close()

    def __enter__(self) -> MeteorScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: MeteorScorer | None = None
_shared_lock = threading.Lock()


def shared_meteor() -> MeteorScorer:
    """A process-wide :class:`MeteorScorer`, started on first use (JVM start-up is ~10 s) and
    restarted if it died; closed at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            _shared = MeteorScorer()
            atexit.register(_shared.close)
        return _shared
