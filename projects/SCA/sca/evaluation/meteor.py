"""One long-lived METEOR 1.5 process that scores many (candidate, references) pairs in batches.

It runs pycocoevalcap's ``meteor-1.5.jar`` with the command line of DenseCap's
``eval/meteor_bridge.py`` (``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``). DenseCap
sends, per pair, ``SCORE ||| ref_1 ||| ... ||| ref_n ||| candidate`` and then ``EVAL ||| stats``
and keeps the second answer (the aggregate over that one segment). METEOR's aggregate over a single
segment equals that segment's score, so here many ``stats`` go into one ``EVAL`` line and the
per-segment answers are kept: the same numbers, without a round trip per pair. Lines are written
by a thread while the answers are read, so a large batch cannot dead-lock on full pipes.
:meth:`MeteorScorer.corpus_score` sends all statistics in one ``EVAL`` line and also keeps the
aggregate, as pycocoevalcap's ``Meteor.compute_score`` (the caption metrics' METEOR) does.

Text is cleaned before it is sent: whitespace (newlines included: a raw newline would split a
command in two and hang the process) is collapsed to single spaces and the field separator ``|||``
is removed, from candidates (as DenseCap does) and from references (DenseCap did not need to).
"""

from __future__ import annotations

import atexit
import math
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence

import pycocoevalcap.meteor.meteor as _pycocoevalcap_meteor

from .java import require_java

METEOR_DIR = os.path.dirname(os.path.abspath(_pycocoevalcap_meteor.__file__))
METEOR_JAR = os.path.join(METEOR_DIR, "meteor-1.5.jar")
# DenseCap's METEOR flags: English, normalised (lower-cased, tokenised) text.
METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")
# Segment statistics per EVAL line (measured fastest among 100 / 1,000 / 20,000).
EVAL_CHUNK = 100
# The longest wait for one answer line before METEOR is declared hung and killed (seconds).
ANSWER_TIMEOUT_S = 120.0


def clean_for_meteor(text: str) -> str:
    """Collapse whitespace to single spaces and drop METEOR's ``|||`` field separator."""
    return " ".join(text.replace("|||", " ").split())


class MeteorError(RuntimeError):
    """The METEOR process failed, hung or answered something unexpected (it is then killed)."""


def _is_stats_line(answer: str) -> bool:
    """A ``SCORE`` answer: METEOR's segment statistics, a line of numbers."""
    fields = answer.split()
    try:
        return bool(fields) and all(math.isfinite(float(f)) for f in fields)
    except ValueError:
        return False


def _as_score(answer: str) -> float:
    """An ``EVAL`` answer: a METEOR score, a number in [0, 1]."""
    try:
        value = float(answer)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise MeteorError(f"unexpected METEOR answer {answer[:200]!r}, expected a score in [0, 1]")
    return value


class MeteorScorer:
    """A running METEOR 1.5 process; :meth:`score` returns one METEOR score per pair and
    :meth:`corpus_score` also the aggregate over all pairs (pycocoevalcap's ``Meteor``).

    Failure behaviour: if the process exits, sends no answer for ``answer_timeout`` seconds or
    answers something that is not METEOR's, the call raises :class:`MeteorError` and the process is
    killed (a later :func:`shared_meteor` starts a new one). Any other exception while scoring,
    ``KeyboardInterrupt`` included, also kills it. If this Python process dies, METEOR reads the
    end of its input and exits.

    Thread-safe (one batch at a time). Close it with :meth:`close` or use it as a context manager.

    Args:
        jar: METEOR's jar (pycocoevalcap's by default).
        max_memory: the JVM's ``-Xmx``.
        answer_timeout: the longest wait, in seconds, for each answer line (the first one includes
            JVM start-up and loading the paraphrase table, ~10 s).
        command: run this command line instead of ``java -jar jar ...`` (another METEOR build).
    """

    def __init__(
        self,
        jar: str = METEOR_JAR,
        max_memory: str = "2G",
        answer_timeout: float = ANSWER_TIMEOUT_S,
        command: Sequence[str] | None = None,
    ) -> None:
        if command is None:
            java = require_java("METEOR 1.5")
            if not os.path.isfile(jar):
                raise FileNotFoundError(
                    f"METEOR jar not found: {jar} (it ships with pycocoevalcap)"
                )
            command = [java, "-jar", f"-Xmx{max_memory}", os.path.basename(jar), *METEOR_ARGS]
        self.answer_timeout = answer_timeout
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            list(command),
            cwd=os.path.dirname(jar),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._answers: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read_answers, daemon=True).start()
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_answers(self) -> None:
        """Reader thread: every stdout line into the queue, then None at the end of the output."""
        for line in iter(self._proc.stdout.readline, b""):
            self._answers.put(line)
        self._answers.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def _next_answer(self) -> str:
        # Wait in short slices: a signal (Ctrl-C) that the kernel hands to another thread is
        # only acted on when the main thread runs Python code again.
        deadline = time.monotonic() + self.answer_timeout
        while True:
            try:
                answer = self._answers.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
                break
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise MeteorError(
                        f"METEOR gave no answer within {self.answer_timeout:g} s (hung); it was "
                        "killed"
                    ) from None
        if answer is None:
            self._proc.wait()
            raise MeteorError(
                f"METEOR exited (code {self._proc.returncode}) while scoring; its stderr:\n"
                f"{self._stderr_tail()}"
            )
        return answer.decode("utf-8", "replace").strip()

    def _exchange(self, lines: Iterable[str], answers: int) -> list[str]:
        """Write ``lines`` (from a thread, so that full pipes cannot dead-lock) while reading
        ``answers`` answer lines."""
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
        received = [self._next_answer() for _ in range(answers)]
        writer.join()
        if error:
            raise MeteorError(f"writing to METEOR failed: {error[0]!r}")
        return received

    @staticmethod
    def _score_lines(pairs: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
        """The ``SCORE`` line of each pair (checked before the process is used)."""
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
        return score_lines

    def _stats(self, score_lines: list[str]) -> list[str]:
        """METEOR's segment statistics of each ``SCORE`` line."""
        stats = self._exchange(score_lines, len(score_lines))
        for answer in stats:
            if not _is_stats_line(answer):
                raise MeteorError(
                    f"unexpected METEOR answer {answer[:200]!r}, expected segment statistics"
                )
        return stats

    def _run(self, work):
        """Run ``work()`` holding the process; on any failure the process is killed."""
        with self._lock:
            if not self.alive:
                raise MeteorError(
                    f"the METEOR process is not running; its stderr:\n{self._stderr_tail()}"
                )
            try:
                return work()
            except BaseException:
                self._kill()
                raise

    def score(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """METEOR of each ``(candidate, references)`` pair, in order (each needs >= 1 reference)."""
        if not pairs:
            return []
        score_lines = self._score_lines(pairs)

        def work() -> list[float]:
            stats = self._stats(score_lines)
            chunks = [stats[i : i + EVAL_CHUNK] for i in range(0, len(stats), EVAL_CHUNK)]
            eval_lines = ["EVAL ||| " + " ||| ".join(chunk) for chunk in chunks]
            # Each EVAL answers one score per segment, then the chunk's aggregate (dropped).
            answers = self._exchange(eval_lines, sum(len(c) + 1 for c in chunks))
            scores = [_as_score(a) for a in answers]
            kept, position = [], 0
            for chunk in chunks:
                kept.extend(scores[position : position + len(chunk)])
                position += len(chunk) + 1
            return kept

        return self._run(work)

    def corpus_score(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> tuple[float, list[float]]:
        """METEOR over all pairs together (one ``EVAL`` of every pair's statistics, as
        pycocoevalcap's ``Meteor.compute_score``) and each pair's score."""
        if not pairs:
            raise ValueError("corpus METEOR needs at least one pair")
        score_lines = self._score_lines(pairs)

        def work() -> tuple[float, list[float]]:
            stats = self._stats(score_lines)
            answers = self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1)
            scores = [_as_score(a) for a in answers]
            return scores[-1], scores[:-1]

        return self._run(work)

    def close(self) -> None:
        with self._lock:
            if self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._kill()
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
