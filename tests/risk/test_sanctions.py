from __future__ import annotations

from datetime import date

import pytest

from entrepot.kernel.errors import InvalidInput
from entrepot.risk.decisions import MemorySink, explain_decision
from entrepot.risk.errors import EmptyName, InvalidParty
from entrepot.risk.names import (
    abbreviations_joined,
    fold,
    is_abjad,
    join_particles,
    query_readings,
    query_tokens,
    tokens,
)
from entrepot.risk.sanctions import (
    ABJAD_NOTE,
    COVER_SIM,
    DobSpec,
    Screener,
    _pair_sim,
    make_party,
    parse_dob,
    parse_remarks,
)
from entrepot.risk.sanctions_eval import (
    ARABIC_SCRIPT_LISTED,
    arabic_script_cases,
    build_cases,
    evaluate,
    evaluate_arabic_script,
)

MALEKI = 10609  # "MALEKI, Naser": DOB 1960 (list: "DOB circa 1960"), nationality Iran


def test_name_only_hit_is_review_never_match(screener: Screener) -> None:
    result = screener.screen(make_party("Naser Maleki"))
    assert result.decision == "review"
    assert result.best is not None and result.best.ent_num == MALEKI
    assert "name only: no DOB or nationality to confirm it" in result.best.reasons


def test_name_and_matching_dob_is_match(screener: Screener) -> None:
    result = screener.screen(make_party("Naser Maleki", dob="1960-05-01"))
    assert result.decision == "match"
    assert result.best is not None
    assert result.best.reasons[1] == "DOB 1960-05-01 matches 1958–1962"


def test_name_dob_and_nationality_is_match_with_reasons(screener: Screener) -> None:
    result = screener.screen(make_party("MALEKI Nasser", dob="1960-05-01", country="IR"))
    assert result.decision == "match"
    assert result.best is not None
    assert result.best.reasons == (
        "name tokens match alias 'MALEKI, Nasser' (Jaro-Winkler 1.00, score 1.00)",
        "DOB 1960-05-01 matches 1958–1962",
        "nationality Iran matches",
    )


@pytest.mark.parametrize(
    ("name", "dob", "country"),
    [
        ("N. Maleki", None, "IR"),
        ("N. Maleki", "1960-05-01", None),
        ("N Maleki", "1960-05-01", "IR"),
    ],
)
def test_a_given_name_only_initialled_is_review_never_match(
    screener: Screener, name: str, dob: str | None, country: str | None
) -> None:
    """'N. Maleki' of Iran was a match (blocked): the initial scored as 0.9 of Naser, and
    the surname and nationality carried it, though thousands of Iranians are an N. Maleki.
    An initial is not a name: a person decides."""
    result = screener.screen(make_party(name, dob, country))
    assert result.decision == "review"
    assert result.best is not None and result.best.ent_num == MALEKI
    assert result.best.reasons[-1] == (
        "a given name is an initial only: the name is not confirmed, a person decides"
    )


@pytest.mark.parametrize(
    ("name", "dob", "country", "ent_num"),
    [
        ("Hussein", None, "EG", 6924),  # a.k.a. of FADHIL, Mustafa Mohamed (Egypt, Kenya)
        ("Tariq", None, "PS", 6905),  # a.k.a. of ABU ZUBAYDAH
        ("Mike", "1943-11-23", None, 4108),  # a.k.a. of RODRIGUEZ OREJUELA, Miguel Angel
    ],
)
def test_one_name_alone_is_review_never_match(
    screener: Screener, name: str, dob: str | None, country: str | None, ent_num: int
) -> None:
    """Every Egyptian called Hussein was a match (blocked): a listed person's one-word
    a.k.a. scored 1.0 against the one word, and the nationality carried it. A single given
    name or nickname is a name alone: a person decides."""
    result = screener.screen(make_party(name, dob, country))
    assert result.decision == "review"
    assert result.best is not None and result.best.ent_num == ent_num
    assert result.best.reasons[-1] == (
        "one name only: the person is not confirmed by a single name, a person decides"
    )


def test_a_name_only_like_a_listed_one_does_not_count_toward_a_match(screener: Screener) -> None:
    """Every Chinese called Sun Wei was a match (blocked): 'sun' is 0.86 like 'su', enough to
    cover the listed 'WEI, Su' (a.k.a. of SU Guiqin, China), and it was counted as the second
    name a person's match needs. Sun and Su are two families: a person decides. The listed
    name itself with the nationality still matches."""
    for name in ("Sun Wei", "Wei Sun"):
        result = screener.screen(make_party(name, None, "CN"))
        assert result.decision == "review", name
        su = next(c for c in result.candidates if c.listed_name == "SU, Guiqin")
        assert su.decision == "review"
        assert su.reasons[-1] == (
            "only one name is the listed one; the others are only like it: a person decides"
        )
    listed = screener.screen(make_party("Su Wei", None, "CN"))
    assert listed.decision == "match" and listed.best is not None
    assert listed.best.listed_name == "SU, Guiqin"
    # born on the listed day, two names alike confirm the person: a spelling of the listed
    # name one letter off is still a match (RAISI, Ebrahim, born 14 Dec 1960, Iran)
    variant = screener.screen(make_party("Ebrahim Reisi", "1960-12-14", "IR"))
    assert variant.decision == "match" and variant.best is not None
    assert variant.best.listed_name == "RAISI, Ebrahim"
    assert screener.screen(make_party("Ebrahim Reisi", None, "IR")).decision == "review"


def test_a_middle_initial_beside_two_names_in_full_can_still_match(screener: Screener) -> None:
    """Only a name carried by initials is unconfirmed: a given name and the surname in full
    with a middle initial, and an exact date of birth, are as strong as without it."""
    listed = screener.screen(make_party("Mohammad S. Islambouli", "1955-01-15"))
    assert listed.decision == "match"
    assert screener.screen(make_party("M. S. Islambouli", "1955-01-15")).decision == "review"


@pytest.mark.parametrize(
    ("dob", "country", "expected"),
    [("1975-05-01", None, "review"), (None, "DE", "review"), ("1960-05-01", "DE", "review")],
)
def test_contradicting_identifier_is_never_match(
    screener: Screener, dob: str | None, country: str | None, expected: str
) -> None:
    assert screener.screen(make_party("Naser Maleki", dob, country)).decision == expected


def test_the_reasons_say_why_a_close_name_is_not_a_hit_or_not_a_match(screener: Screener) -> None:
    """A clear decision with a near candidate was logged with the single reason "name tokens
    match alias 'AL-MALEKI, Shebib Lazim' (...)", and a review whose nationality matched with
    only "nationality Kenya matches": each read like the opposite of the decision. The reasons
    now say which threshold the name score missed."""
    clear = screener.screen(make_party("Maleki")).best
    assert clear is not None and clear.decision == "clear"
    assert clear.reasons[-1] == (
        f"name score {clear.name_score} is below the 0.88 a review needs: not a hit"
    )
    # the best is 'ABDALLAH, Muhammad (Abdullah written otherwise), of Syria: this one is Kenyan
    (review,) = [
        c for c in screener.screen(make_party("Mohammed Abdullah", country="KE")).candidates
        if c.listed_name == "MOHAMMED, Fazul Abdullah"
    ]  # fmt: skip
    assert review.decision == "review"
    assert "nationality Kenya matches" in review.reasons
    assert review.reasons[-1] == f"name score {review.name_score} is below the 0.92 a match needs"


@pytest.mark.parametrize("code", ["HU", "ZM", "EE", "mw", "TG", "IS"])
def test_every_iso_country_code_is_accepted(screener: Screener, code: str) -> None:
    """Only codes of countries the OFAC list names somewhere were known: a party from Hungary,
    Zambia or Estonia was refused as an unknown country (and, with screening on, so was every
    transfer to a payee at a bank there). The code is still evidence: it contradicts a listed
    nationality."""
    party = make_party("Naser Maleki", country=code)
    assert party.country == code.upper()
    result = screener.screen(party)
    assert result.decision == "review"
    assert result.best is not None and "nationality differs (listed Iran)" in result.best.reasons


def test_party_type_mismatch_clears(screener: Screener) -> None:
    result = screener.screen(make_party("Naser Maleki", party_type="entity"))
    assert result.decision == "clear"
    assert result.best is not None and "type differs (listed as individual)" in result.best.reasons


def test_surname_alone_is_not_a_hit(screener: Screener) -> None:
    assert screener.screen(make_party("Maleki")).decision == "clear"


@pytest.mark.parametrize(
    ("query", "country"),
    [("Sheikh Zhang", "CN"), ("Haji Abdul", "AF"), ("General Molina", None), ("Mr Abbasi", "IR")],
)
def test_a_surname_with_a_title_is_still_a_surname_alone(
    screener: Screener, query: str, country: str | None
) -> None:
    """A title counted as a second name token, so the surname-alone cap never applied, and a
    title close to a listed given name (Sheikh/Shi, Haji/Hadi, General/Gener) even counted as
    matching it: "Sheikh Zhang" of China was a *match* for 'ZHANG, Shi', an automatic block on
    a surname and a nationality."""
    result = screener.screen(make_party(query, country=country))
    assert result.decision == "clear"
    assert all(c.decision == "clear" for c in result.candidates)


def test_a_title_the_listing_carries_still_counts(screener: Screener) -> None:
    """Shaykh is also a family name: where the listed name holds the same word it matches."""
    result = screener.screen(make_party("Muhammad Shaykh"))
    assert result.decision == "review"
    assert result.best is not None and result.best.listed_name == "AL-SHAYKH, Muhammad"


@pytest.mark.parametrize(
    "query",
    ["Nasir Maleky", "Насер Малеки", "N. Maleki", "Náser Malekí", "MALEKI NASER", "Naser Malkei"],
)
def test_variants_of_a_listed_name_are_found(screener: Screener, query: str) -> None:
    result = screener.screen(make_party(query))
    assert result.decision == "review"
    assert MALEKI in {c.ent_num for c in result.candidates if c.decision != "clear"}


def test_unlisted_names_are_clear(screener: Screener) -> None:
    for query in ("Jennifer Walker", "Northwind Ceramics GmbH", "Kenji Tanaka"):
        assert screener.screen(make_party(query)).decision == "clear", query


def test_decisions_are_logged_minimised(screener: Screener) -> None:
    sink = MemorySink()
    logged = Screener(screener.index, sink=sink)
    result = logged.screen(make_party("Naser Maleki", dob="1960-05-01"))
    assert result.decision_id is not None
    (decision,) = sink.decisions
    assert decision.inputs["dob_year"] == 1960
    assert "maleki" not in str(decision.inputs).lower()
    assert decision.model_version == screener.index.version
    assert "DOB 1960-05-01 matches" in explain_decision(sink, result.decision_id)


@pytest.mark.parametrize(
    ("args", "error", "field"),
    [
        (("",), EmptyName, "name"),
        (("  ,. ",), EmptyName, "name"),
        (("Mr",), EmptyName, "name"),  # titles and legal forms name no one
        (("Dr. Mrs",), EmptyName, "name"),
        (("The Company Ltd",), EmptyName, "name"),
        (("A B", "1960-13-01"), InvalidParty, "dob"),
        (("A B", None, "Atlantis"), InvalidParty, "country"),
        (("A B", None, "QQ"), InvalidParty, "country"),
        (("A B", None, None, "vessel"), InvalidParty, "type"),
    ],
)
def test_bad_party_input(
    args: tuple[str | None, ...], error: type[InvalidInput], field: str
) -> None:
    with pytest.raises(error) as info:
        make_party(*args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_title_with_a_name_is_screened() -> None:
    assert make_party("Mr Maleki").name == "Mr Maleki"
    with pytest.raises(EmptyName, match="'Mr' holds only titles or legal forms"):
        make_party(" Mr ")
    # a payment's own screening of a payee registered as "Mr" screens what there is
    assert make_party("Mr", asked=False).name == "Mr"


def test_remarks_parsing() -> None:
    info = parse_remarks(
        "DOB 01 Jan 1964; alt. DOB circa 1960; POB Cairo, Egypt; nationality Syria; "
        "a.k.a. 'ABU WALID'; Gender Male; citizen Iran."
    )
    assert info["dobs"] == (DobSpec(1964, 1964, 1, 1), DobSpec(1958, 1962))
    assert info["nationalities"] == frozenset({"SY", "IR"})
    assert info["pob_countries"] == frozenset({"EG"})
    assert info["akas"] == ("ABU WALID",)
    assert info["gender"] == "male"
    assert parse_dob("1958 to 1960") == DobSpec(1958, 1960)
    assert parse_dob("Mar 1960") == DobSpec(1960, 1960, 3, None)


def test_normalisation() -> None:
    assert tokens("Müller-Lüdenscheidt, José") == ["muller", "ludenscheidt", "jose"]
    assert tokens("Владимир") == ["vladimir"]
    assert fold("mohammed") == fold("muhammad")


def test_seeded_evaluation_exact(screener: Screener) -> None:
    report = evaluate(screener, build_cases(screener.index, 120, 120, seed=7))
    report.pop("screenings_per_s")
    assert report == {
        "listed": 120,
        "unlisted": 120,
        "recall": 0.9917,
        "false_positive_rate": 0.025,
        "recall_by_variant": {
            "diacritics": 1.0, "drop_middle": 0.95, "initial": 1.0, "reorder": 1.0,
            "transliteration": 1.0, "typo": 1.0,
        },
    }  # fmt: skip


def test_a_party_screened_again_gets_the_same_screening_and_its_own_decision(
    screener: Screener,
) -> None:
    sink = MemorySink()
    logged = Screener(screener.index, sink=sink, remember=2)
    maleki, other = make_party("Naser Maleki"), make_party("Aline Uwase", country="RW")
    first = logged.screen(maleki)
    assert logged.screen(other).decision == "clear"
    again = logged.screen(make_party("Naser Maleki"))
    assert (again.decision, again.best, again.candidates) == (
        first.decision,
        first.best,
        first.candidates,
    )
    assert again.decision_id != first.decision_id  # each screening is logged on its own
    assert len(sink.decisions) == 3
    assert len(logged._memo) == 2  # bounded: the oldest goes first
    logged.screen(make_party("Somebody Else"))
    assert list(logged._memo) == [maleki, make_party("Somebody Else")]


def test_screenings_are_not_reused_across_lists(screener: Screener) -> None:
    """The lists replaced (a new index): what was screened against the old ones is not
    reused. Stood in for by an index whose version differs."""
    import copy

    logged = Screener(screener.index)
    assert logged.screen(make_party("Naser Maleki")).list_version == screener.index.version
    newer = copy.copy(screener.index)
    newer.version = "ofac-newer"
    logged.index = newer
    assert logged.screen(make_party("Naser Maleki")).list_version == "ofac-newer"
    unremembering = Screener(screener.index, remember=0)
    unremembering.screen(make_party("Naser Maleki"))
    assert not unremembering._memo


def test_remembered_screenings_tell_parties_apart_by_every_field(screener: Screener) -> None:
    """The same name with another date of birth, country or type is another party: each is
    screened as a screener that remembers nothing would."""
    remembering = Screener(screener.index)
    fresh = Screener(screener.index, remember=0)
    parties = [
        make_party("Naser Maleki"),
        make_party("Naser Maleki", dob="1960-05-01"),
        make_party("Naser Maleki", dob="1990-05-01"),
        make_party("Naser Maleki", dob="1960-05-01", country="IR"),
        make_party("Naser Maleki", country="FR"),
        make_party("Naser Maleki", party_type="entity"),
    ]
    for party in parties * 2:  # the second time from memory
        got, want = remembering.screen(party), fresh.screen(party)
        assert (got.decision, got.score, got.best) == (want.decision, want.score, want.best)
    assert len({remembering.screen(p).decision for p in parties}) > 1


@pytest.mark.parametrize("dob", ["19600501", "1960-W18-1", "1960-5-1", "2999-01-01", "1960-02-30"])
def test_a_date_of_birth_is_a_past_date_written_yyyy_mm_dd(dob: str) -> None:
    """``date.fromisoformat`` also reads the basic and week forms: the docs promise one form,
    and a date in the future is nobody's birth date."""
    with pytest.raises(InvalidParty) as refused:
        make_party("Naser Maleki", dob=dob)
    assert refused.value.field == "dob"
    assert make_party("Naser Maleki", dob=" 1960-05-01 ").dob == date(1960, 5, 1)


def test_a_partial_name_born_on_the_listed_day_is_reviewed_never_matched(
    screener: Screener,
) -> None:
    """'Moussa Essaadi' of ESSAADI, Moussa Ben Amor Ben Ali: both names given match, the rest
    of the listed name is missing, so the name scores below a review. Born on the listed day
    (1964-12-04), that was still 'clear'; a person now looks. Born another day, or with no
    date, it stays clear: a partial name alone is no hit."""
    born = screener.screen(make_party("Moussa Essaadi", "1964-12-04", "TN"))
    assert born.decision == "review" and born.best is not None and born.best.ent_num == 7832
    assert "matches to the day" in born.best.reasons[-1]
    for dob in ("1977-07-04", None):
        assert screener.screen(make_party("Moussa Essaadi", dob, "TN")).decision == "clear"


@pytest.mark.parametrize(
    ("query", "ent_num"),
    [
        ("Abuhafs Al-Masri", 6367),  # AL-MASRI, Abu Hafs
        ("AbuHafs AlMasri", 6367),
        ("Abu Hafs Almasri", 6367),
        ("Abouhafs El-Masri", 6367),
        ("Abdulrahman Alfaqih", 9595),  # AL-FAQIH, Abd al-Rahman
        ("Abdel Rahman Al Faqih", 9595),
        ("Abdurrahman al-Faqih", 9595),
        ("Muhammad Jibril Abd al-Rahman", 12598),  # ABDUL RAHMAN, Muhammad Jibril
        ("Saad Binladen", 11378),  # BIN LADEN, Sa'ad
        ("Hasan Nasr Allah", 2686),  # NASRALLAH, Hasan: Allah apart was a name of its own
        ("Muhammad Husayn Fadl Allah", 2679),  # FADLALLAH, Shaykh Muhammad Husayn
    ],
)
def test_particles_joined_or_apart_are_found(screener: Screener, query: str, ent_num: int) -> None:
    """Abu, al-, bin and Abd al- are written apart, hyphened or joined to the next name: a
    listed 'AL-MASRI, Abu Hafs' screened as 'Abuhafs Al-Masri' or 'AbuHafs AlMasri' was
    clear (nothing shared a token), and 'Abdel Rahman Al Faqih' scored under a review. Each
    is a review on the name alone, quoting the name as listed."""
    result = screener.screen(make_party(query))
    assert result.decision == "review"
    hit = {c.ent_num: c for c in result.candidates if c.decision != "clear"}
    assert ent_num in hit
    assert "name only: no DOB or nationality to confirm it" in hit[ent_num].reasons


def test_a_joined_particle_name_with_its_dob_can_match(screener: Screener) -> None:
    result = screener.screen(make_party("Abuhafs Almasri", dob="1951-03-01"))
    assert result.decision == "match"
    assert result.best is not None and result.best.ent_num == 6367
    assert result.best.reasons[0].startswith("name tokens match 'AL-MASRI, Abu Hafs'")


@pytest.mark.parametrize(
    ("query", "not_ent_num"),
    [
        ("Abubakr Almasri", 6367),  # another name behind Abu
        ("Binhafs Almasri", 6367),  # another particle: son of Hafs is not father of Hafs
        ("Abdulaziz Alfaqih", 9595),
    ],
)
def test_a_shared_particle_is_not_a_shared_name(
    screener: Screener, query: str, not_ent_num: int
) -> None:
    """Joined, 'abubakr' and 'abuhafs' share four letters out of seven: what follows the
    particle decides."""
    result = screener.screen(make_party(query))
    assert not_ent_num not in {c.ent_num for c in result.candidates if c.decision != "clear"}


def test_particles_are_joined_to_the_next_name() -> None:
    join = join_particles
    assert join(tokens("Abu Hafs al-Masri")) == ["abuhafs", "almasri"]
    assert join(tokens("AbuHafs AlMasri")) == ["abuhafs", "almasri"]
    for spelling in ("Abd al-Rahman", "Abdul Rahman", "Abdulrahman", "Abdel Rahman",
                     "Abdurrahman", "Abd ar-Rahman"):  # fmt: skip
        assert join(tokens(spelling)) == ["abdalrahman"], spelling
    assert join(tokens("Usama bin Ladin")) == ["usama", "binladin"]
    assert join(tokens("Nasir ud-Din")) == ["nasir", "aldin"]  # the article before d, as ud
    assert join(tokens("Hasan Nasr Allah")) == ["hasan", "nasrallah"]
    assert join(tokens("Hayat Ullah")) == ["hayatullah"]
    assert join(tokens("Allah Nur")) == ["allah", "nur"]  # nothing before it to join to
    assert join(tokens("Ahmed al")) == ["ahmed", "al"]  # nothing to join to
    assert join(tokens("Abdi Ali")) == ["abdi", "ali"]  # Abdi is a name, not Abd al-


def test_an_untyped_party_is_not_confirmed_by_an_entitys_address(screener: Screener) -> None:
    """'Banco Nacional de Cuba' of Switzerland, no type given, was a match (blocked), its score
    raised: the bank's Zurich branch address counted as if it were the party's nationality. A
    party of unknown type may be a person, whose country is no address of the entity's: the
    address is noted, the name alone decides (a review)."""
    result = screener.screen(make_party("Banco Nacional de Cuba", country="CH"))
    assert result.decision == "review"
    assert result.best is not None and result.best.ent_num == 306
    assert result.best.score == result.best.name_score  # nothing corroborates
    assert "country Switzerland matches a listed address" not in result.best.reasons
    assert (
        "country Switzerland appears in the listing's addresses: the party's type is not "
        "given, and an address is not a nationality" in result.best.reasons
    )
    # an entity's screening still reads the address as the entity's own
    typed = screener.screen(make_party("Banco Nacional de Cuba", country="CH", party_type="entity"))
    assert typed.decision == "match"


@pytest.mark.parametrize("party_type", [None, "entity"])
def test_an_entitys_stated_registration_country_confirms(
    screener: Screener, party_type: str | None
) -> None:
    """ASCOTEC HOLDING GMBH: 'Registration ID HRB 26136 (Germany)'. Where the list states the
    country an entity is registered in, that is its nationality, typed or not."""
    result = screener.screen(make_party("Ascotec Holding GmbH", None, "DE", party_type))
    assert result.decision == "match"
    assert result.best is not None and result.best.ent_num == 11608
    assert "country Germany matches the listed registration" in result.best.reasons


def test_registration_countries_are_parsed() -> None:
    info = parse_remarks(
        "Registration ID HRB 26136 (Germany); UK Company Number 01126618 (United Kingdom); "
        "Vessel Registration Identification IMO 9187629; Tax ID No. 100036386 (Serbia)."
    )
    assert info["registrations"] == frozenset({"DE", "GB"})  # a tax number is no registry
    assert parse_remarks("Nationality of Registration Korea, North; Secondary sanctions")[
        "registrations"
    ] == frozenset({"KP"})


@pytest.mark.parametrize(
    ("query", "ent_num"),
    [
        ("Cubanacan UK Limited", 8128),  # listed "CUBANACAN U.K. LIMITED": was clear
        ("CUBANACAN U.K. LIMITED", 8128),
        ("Cubanacan U K Limited", 8128),
        ("Cubanacan International BV", 8127),  # listed "... B.V": was just below review
        ("Cubanacan International B.V.", 8127),
    ],
)
def test_a_dotted_abbreviation_is_found_however_it_is_written(
    screener: Screener, query: str, ent_num: int
) -> None:
    result = screener.screen(make_party(query))
    assert result.decision == "review"  # a name alone: a person decides, never a match
    assert result.best is not None and result.best.ent_num == ent_num


def test_dotted_abbreviations_are_joined_into_one_word() -> None:
    assert abbreviations_joined("CUBANACAN U.K. LIMITED") == "CUBANACAN UK LIMITED"
    assert abbreviations_joined("CUBANACAN INTERNATIONAL B.V") == "CUBANACAN INTERNATIONAL BV"
    assert abbreviations_joined("Comercial S. A. de C.V.") == "Comercial SA de CV"
    # one initial is a name's initial, not an abbreviation; and nothing else is touched
    assert abbreviations_joined("Mohammad S. Islambouli") is None
    assert abbreviations_joined("No abbreviation, Ltd.") is None


# --------------------------------------------------------------------------- Arabic script
def test_words_in_arabic_script_become_one_symbol_a_letter() -> None:
    """Unidecode made 'ymn lzwhry' of أيمن الظواهري (consonants only): no listed spelling
    came near. Each letter is a symbol instead; the article stays joined (al + the name, read
    with or without it, as al-Zawahiri and Zawahiri are), Abd al- and Allah are joined as
    Latin spellings join them."""
    assert query_tokens("أيمن الظواهري") == ["OYMN", "alUWAHRY"]
    assert query_tokens("عبد الرحمن") == ["abdalRHMN"]
    assert query_tokens("عبدالرحمن") == ["abdalRHMN"]
    assert query_tokens("عبد الله") == ["abdalLH"]
    assert query_tokens("حسن نصر الله") == ["HSN", "NSRalLH"]
    assert query_tokens("أسامة بن لادن") == ["OSAM@", "bin", "LADN"]
    assert query_tokens("ابو بكر") == ["abu", "BKR"]
    assert query_tokens("ولی قلی\u200cزاده") == ["WLY", "KLYZADH"]  # ZWNJ: one word
    assert query_tokens("پژمان چگینی") == ["PŽMAN", "ČGYNY"]
    assert query_tokens("ﻣﺤﻤﺪ") == ["MHMD"]  # presentation forms
    assert query_tokens("Ayman الظواهري ١٩٥١") == ["ayman", "alUWAHRY", "1951"]
    assert query_tokens("Ayman al-Zawahiri") == tokens("Ayman al-Zawahiri")
    assert [is_abjad(t) for t in query_tokens("Omar عمر")] == [False, True]


def test_marks_titles_and_persian_forms_are_read_as_a_writer_means_them() -> None:
    """Found by a review: vowel signs hid the particles, titles counted as names, the silent
    ه of Khamenei and the -ei written apart were letters to match, a Persian compound given
    name was one word against a list that writes two."""
    assert query_tokens("مُحَمَّد") == ["MHMD"]  # short-vowel signs and shadda are dropped
    assert query_tokens("عَبْدُ اللهِ") == ["abdalLH"]
    assert query_tokens("حسن نصر اللّٰه") == ["HSN", "NSRalLH"]
    assert query_tokens("الشيخ نعيم قاسم") == ["sheikh", "NEYM", "KASM"]
    assert query_tokens("حاج قاسم") == ["haji", "KASM"]
    assert query_tokens("الدكتور أيمن") == ["dr", "OYMN"]
    assert query_tokens("علی خامنه\u200cای") == query_tokens("علی خامنه ای") == ["ELY", "XAMNĦY"]
    assert query_tokens("ګلبدین حکمتیار") == ["GLBDYN", "HKMTYAR"]  # Pashto's ګ
    assert query_tokens("محمدرضا") == ["MHMD", "RVA"]
    assert query_tokens("محمدی") == ["MHMDY"]  # Mohammadi: one name
    assert query_tokens("علیزاده") == ["ELYZADH"]  # Alizadeh: one name
    # a second review: one-word compounds, Urdu's letters, hamza seats, suffixes apart
    assert query_readings("نصیرالدین حقانی") == [
        ["NSYR", "alDYN", "HKANY"],
        ["NSYRəʟDYN", "HKANY"],  # the compound as one word, as Nasiruddin
    ]
    assert query_readings("حسن البغدادي") == [["HSN", "alBGDADY"]]  # no compound: one reading
    assert query_tokens("سیف اللہ خالد") == ["SYFalLH", "XALD"]  # Urdu's ہ in Allah
    assert query_tokens("ذکی الرحمن لکھوی")[-1] == "LXWY"  # Urdu's کھ is kh
    assert query_tokens("داؤد") == ["DAŴD"]
    assert query_tokens("حاجی زاده") == ["HAJYZADH"]  # Hajizadeh, its suffix apart


def test_a_stray_arabic_character_in_a_latin_word_leaves_the_word_whole() -> None:
    """An invisible U+FEFF or a tatweel inside a Latin word split it in two, and a listed
    name so written screened clear; a letter glued to Latin letters is read as before."""
    assert query_tokens("Ayman al-Zawa\ufeffhiri") == ["ayman", "al", "zawahiri"]
    assert query_tokens("Zawa\u0640hiri") == ["zawahiri"]
    assert query_tokens("Zawaحhiri") == tokens("Zawaحhiri")


def test_a_zero_width_space_inside_a_listed_name_does_not_hide_it(screener: Screener) -> None:
    """U+200B is invisible, and pasted names carry it: Unidecode made it a space, so
    "Naser Mal\u200beki" (shown as Naser Maleki) was two words, Mal and eki, and screened
    clear. It is read both ways now, as nothing and as a space (some scripts part words
    with it), the better score kept."""
    for name in ("Naser Mal\u200beki", "Na\u200bser Maleki", "Naser\u200bMaleki"):
        result = screener.screen(make_party(name))
        assert result.decision == "review", name
        assert result.best is not None and result.best.ent_num == MALEKI
    assert ["naser", "maleki"] in query_readings("Naser Mal\u200beki")


def test_a_chinese_name_in_han_characters_finds_its_listed_pinyin(screener: Screener) -> None:
    """李方伟 is LI, Fangwei (listed, NPWMD): Unidecode reads each character as a word, "Li
    Fang Wei", which matched no listed name, and the listed man written in his own script was
    clear. A run of Han characters is also read as lists write a Chinese name."""
    result = screener.screen(make_party("李方伟"))
    assert result.decision == "review"
    assert result.best is not None and result.best.ent_num == 11447
    assert ["li", "fangwei"] in query_readings("李方伟")


@pytest.mark.parametrize("name", ["Li Fang Wei", "LI Fang-Wei", "Fang Wei Li"])
def test_a_chinese_name_in_pinyin_syllables_finds_its_listed_name(
    screener: Screener, name: str
) -> None:
    """LI, Fangwei written a syllable a word, as forms and Unidecode write Chinese names ("Li
    Fang Wei"; given name first, "Fang Wei Li"), was clear: no listed token is "fang" or
    "wei". A name of three pinyin syllables is also read with two of them as one word (the
    given name), both ways round."""
    result = screener.screen(make_party(name))
    assert result.decision == "review", name
    assert result.best is not None and result.best.ent_num == 11447


def test_only_a_name_of_three_pinyin_syllables_is_read_joined() -> None:
    """The joined readings are for pinyin alone: a name with a word that is no syllable
    (Anna, Lee), or of another number of words, is read as written."""
    assert ["li", "fangwei"] in query_readings("Li Fang Wei")
    assert ["fangwei", "li"] in query_readings("Fang Wei Li")
    for name in ("Anna Li Wei", "Lee Fang Wei", "Li Wei", "Li Fang Wei Ming", "Ma Li"):
        assert query_readings(name) == [query_tokens(name)], name


def test_arabic_script_aligns_with_the_latin_spelling_it_writes() -> None:
    """محمود writes the ū of Mahmud, محمد none: the list's Mahmud is not محمد (a known
    pair); حسين writes the y of Husayn, حسن none; ي inside a word is no a (حميد is not
    Ahmad)."""

    def sim(script: str, latin: str) -> float:
        (token,) = query_tokens(script)
        return _pair_sim(token, fold(token), latin, fold(latin))

    assert sim("محمد", "muhammad") > 0.95 > COVER_SIM > sim("محمد", "mahmud")
    assert sim("محمد", "muhammad") > sim("محمد", "mahmoud")
    assert sim("محمود", "mahmoud") > sim("محمود", "muhammad")
    assert sim("حسين", "hussein") > sim("حسين", "hasan")
    assert sim("حسن", "hasan") > COVER_SIM > sim("حسن", "hussein")
    assert sim("حميد", "hamid") > COVER_SIM > sim("حميد", "ahmad")
    assert sim("أيمن", "ayman") >= 0.95
    assert sim("ظواهري", "zawahiri") >= 0.95
    assert sim("قاسم", "qasim") >= 0.93
    assert sim("شیرازی", "shirazi") == 1.0
    assert sim("خامنه\u200cای", "khamenei") >= 0.95
    assert sim("محمد", "ahmad") < 0.85
    assert sim("مجيد", "majid") >= 0.95  # j folded to i and collapsed: "maid"
    assert sim("اظہر", "azhar") >= 0.95  # zh folded to j: "aiar"
    assert sim("داؤد", "dawood") >= 0.85
    assert sim("عاطف", "atif") >= 0.92  # a first ع before a vowel letter may be unwritten
    assert sim("عباسی", "bazzi") < COVER_SIM  # not before a consonant
    assert sim("فرج", "jafari") < COVER_SIM  # ج is no vowel


@pytest.mark.parametrize(
    ("query", "ent_num", "listed"),
    [
        ("أيمن الظواهري", 2676, "AL-ZAWAHIRI, Ayman"),
        ("حسن نصر الله", 2686, "NASRALLAH, Hasan"),
        ("قاسم سليماني", 10481, "SOLEIMANI, Qasem"),
        ("عبد الله محمد بن سليمان المحيسني", 20880, None),
        ("ولی قلی\u200cزاده", 28685, "QOLIZADEH, Vali"),  # an a.k.a.
        ("Ayman الظواهري", 2676, "AL-ZAWAHIRI, Ayman"),  # mixed scripts
        ("الشيخ نعيم قاسم", 24514, "QASSEM, Naim"),  # a title in the script
        ("أَبُو مَهْدِي المُهَنْدِس", 11461, None),  # vowel signs; al-Muhandis is a name
        ("محمد الياس كشميري", 12147, None),  # Ilyas begins with the article's letters
        ("غلامحسین محسنی اژه\u200cای", 12252, None),  # the Persian -ei, a compound name
        ("محمدرضا جعفری بندرآبادی", 29817, None),
        ("نصیرالدین حقانی", 12129, "HAQQANI, Nasiruddin"),  # a one-word compound
        ("محمد جابر", 15587, None),  # common words: shortlisted among many
        ("داؤد ابراہیم", 9758, None),  # Urdu
    ],
)
def test_a_listed_name_written_in_arabic_script_is_found(
    screener: Screener, query: str, ent_num: int, listed: str | None
) -> None:
    """Screened clear before: a sanctioned person's name in their own script passed."""
    result = screener.screen(make_party(query))
    assert result.decision == "review"
    hit = {c.ent_num: c for c in result.candidates if c.decision != "clear"}
    assert ent_num in hit
    reasons = hit[ent_num].reasons
    if listed is not None:
        assert f"'{listed}' (similarity 0." in reasons[0]
    assert ABJAD_NOTE in reasons
    assert "name only: no DOB or nationality to confirm it" in reasons


def test_an_arabic_script_name_with_its_dob_and_nationality_can_match(screener: Screener) -> None:
    result = screener.screen(make_party("أيمن الظواهري", dob="1951-06-19", country="EG"))
    assert result.decision == "match"
    assert result.best is not None and result.best.ent_num == 2676
    assert "DOB 1951-06-19 matches 1951-06-19" in result.best.reasons


@pytest.mark.parametrize(
    "query",
    [
        "عمر حداد",
        "فاطمة الخوري",
        "داریوش احمدی",
        "یاسمین قریشی",
        "شیرین کریمی",
        "محمد اشتری",
        "حمید نوری",
        "محمد",  # Mahmud listed; Ahmad Noor listed; one name
        "نور الدين",  # a compound given name alone is one name
        "وائل حداد",
        "منى فرج",
        "علی عباسی",
    ],
)
def test_unlisted_names_in_arabic_script_are_clear(screener: Screener, query: str) -> None:
    assert screener.screen(make_party(query)).decision == "clear"


def test_a_name_of_short_vowel_signs_alone_is_refused() -> None:
    with pytest.raises(EmptyName):
        make_party("\u064e\u064f\u0650")  # fatha, damma, kasra: no letter


def test_arabic_script_evaluation_exact(screener: Screener) -> None:
    """The hand-written listed set is found in full; non-listed Arabic and Persian names in
    their script are flagged about as often as the same names in Latin letters."""
    report = evaluate_arabic_script(screener, arabic_script_cases(screener.index, 200, seed=7))
    assert report == {
        "listed": len(ARABIC_SCRIPT_LISTED),
        "recall": 1.0,
        "listed_reviewed": 121,
        "recall_reviewed": 0.9504,  # 6 missed: 5 of them missed in Latin letters too
        "unlisted": 200,
        "false_positive_rate": 0.0,
        "latin_false_positive_rate": 0.01,
    }
