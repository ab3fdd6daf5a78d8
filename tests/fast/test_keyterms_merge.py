"""pipeline.keyterms: a batch transcript keeps its plain decode except the spans where only the decode
with hotwords has a keyterm."""

from __future__ import annotations

from audio_service.pipeline.keyterms import keep_keyterms
from audio_service.schema import Segment, Transcript, Word


def transcript(*texts: str, timed: bool = False) -> Transcript:
    """One segment per text, one second per word when ``timed``."""
    segments, t = [], 0.0
    for i, text in enumerate(texts):
        words = []
        for w in text.split():
            words.append(Word(t, t + 1, " " + w))
            t += 1
        start = words[0].start if words else t
        segments.append(Segment(i, start, t, " " + text, words=tuple(words) if timed else ()))
    return Transcript("transcribe", "es", t, tuple(segments))


PLAIN = "Se recomienda enfaticamente a los viajeros, cualquier rijo del clima. Dado que ello puede afectar."
BIASED = "Se recomienda enfáticamente a los viajeros, cualquier riesgo del clima. Dado que eso puede afectar."


def test_only_the_keyterms_spans_change() -> None:
    # "ello" -> "eso" is the hotwords' side effect on a word that is no keyterm's: kept as decoded plainly
    out = keep_keyterms(transcript(PLAIN), transcript(BIASED), ("enfáticamente", "riesgo"))
    assert out.text == "Se recomienda enfáticamente a los viajeros, cualquier riesgo del clima. Dado que ello puede afectar."


def test_without_a_keyterm_in_the_difference_the_plain_decode_stays() -> None:
    plain = transcript(PLAIN)
    assert keep_keyterms(plain, transcript(BIASED), ("Quilter",)) is plain
    assert keep_keyterms(plain, transcript(BIASED), ()) is plain
    # a keyterm the plain decode already has is not taken again (nor the words around it)
    assert keep_keyterms(plain, transcript(PLAIN.replace("rijo", "riesgo ya")), ("rijo",)) is plain


def test_a_keyterm_is_not_added_where_the_plain_decode_heard_nothing() -> None:
    # the hotwords decode echoing its prompt into a pause: no plain word there to replace
    plain = transcript("the stew for dinner", "and carrots")
    assert keep_keyterms(plain, transcript("the stew for dinner Quilter, Dashwood.", "and carrots"), ("Quilter",)) is plain


def test_a_multi_word_keyterm_replaces_a_different_number_of_words() -> None:
    plain = transcript("Jean-Carlo fité là, a perdu le contrôle.", "Peu après le démarrage.")
    biased = transcript("Giancarlo Fisichella a perdu le contrôle. Peu après", "le démarrage.")
    out = keep_keyterms(plain, biased, ("Giancarlo Fisichella",))
    assert [s.text for s in out.segments] == [" Giancarlo Fisichella a perdu le contrôle.", " Peu après le démarrage."]


def test_a_keyterm_inside_a_hyphenated_word() -> None:
    out = keep_keyterms(transcript("peppered flour-fatten sauce"), transcript("peppered flour-fattened sauce"), ("fattened",))
    assert out.text == "peppered flour-fattened sauce"


def test_word_timings_come_with_the_span() -> None:
    plain = transcript("cualquier rijo del", "clima extremo", timed=True)
    biased = transcript("cualquier riesgo del clima", "extremo", timed=True)
    out = keep_keyterms(plain, biased, ("riesgo",))
    assert out.text == "cualquier riesgo del clima extremo"
    assert [w.word for w in out.words] == [" cualquier", " riesgo", " del", " clima", " extremo"]
    assert out.segments[0].words[1] == biased.segments[0].words[1]  # the second decode's timing of its word
    assert out.segments[0].text == "".join(w.word for w in out.segments[0].words)


def test_a_span_that_takes_a_whole_segment_drops_it() -> None:
    plain = transcript("the stew of turnip", "sand", "carrots")
    biased = transcript("the stew of turnips and", "carrots")
    out = keep_keyterms(plain, biased, ("turnips",))
    assert [(s.id, s.text) for s in out.segments] == [(0, " the stew of turnips and"), (1, " carrots")]
