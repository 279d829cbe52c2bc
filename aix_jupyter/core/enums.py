"""Enumerations of the aiXplain wire (string values, exactly as sent and received).

Members, values, ``str()`` and ``format()`` as the SDK 0.2.48 (``str(ResponseStatus.SUCCESS)`` is
``SUCCESS``, ``str(AssetStatus.DRAFT)`` is ``AssetStatus.DRAFT``): code compares or sends ``.value``.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, TypeVar

from aix_jupyter.core.errors import ParameterError


class ResponseStatus(str, Enum):  # noqa: UP042 - StrEnum changes str() and format(); keep the SDK's
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    def __str__(self) -> str:  # the SDK's: "SUCCESS"; its other enums print as "AssetStatus.DRAFT"
        return str(self.value)


class AssetStatus(str, Enum):  # noqa: UP042
    DRAFT = "draft"
    HIDDEN = "hidden"
    SCHEDULED = "scheduled"
    ONBOARDING = "onboarding"
    ONBOARDED = "onboarded"
    PENDING = "pending"
    FAILED = "failed"
    TRAINING = "training"
    REJECTED = "rejected"
    ENABLING = "enabling"
    DELETING = "deleting"
    DISABLED = "disabled"
    DELETED = "deleted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    DEPRECATED_DRAFT = "deprecated_draft"


class FunctionType(str, Enum):  # noqa: UP042 - a str too (the SDK's is a plain Enum)
    AI = "ai"
    SEGMENTOR = "segmentor"
    RECONSTRUCTOR = "reconstructor"
    UTILITY = "utility"
    METRIC = "metric"
    SEARCH = "search"
    INTEGRATION = "connector"
    CONNECTOR = "connector"  # an alias of INTEGRATION
    CONNECTION = "connection"
    MCP_CONNECTION = "mcpconnection"
    MCPSERVER = "mcpserver"


class Function(str, Enum):  # noqa: UP042
    """Model functions (slugs): the SDK 0.2.48's list, in its order. Unknown slugs on the wire stay text."""

    TEXT_NORMALIZATION = "text-normalization"
    PARAPHRASING = "paraphrasing"
    LANGUAGE_IDENTIFICATION = "language-identification"
    BENCHMARK_SCORING_ASR = "benchmark-scoring-asr"
    MULTI_CLASS_TEXT_CLASSIFICATION = "multi-class-text-classification"
    SPEECH_EMBEDDING = "speech-embedding"
    DOCUMENT_IMAGE_PARSING = "document-image-parsing"
    TRANSLATION = "translation"
    AUDIO_SOURCE_SEPARATION = "audio-source-separation"
    SPEECH_RECOGNITION = "speech-recognition"
    KEYWORD_SPOTTING = "keyword-spotting"
    PART_OF_SPEECH_TAGGING = "part-of-speech-tagging"
    REFERENCELESS_AUDIO_GENERATION_METRIC = "referenceless-audio-generation-metric"
    VOICE_ACTIVITY_DETECTION = "voice-activity-detection"
    SENTIMENT_ANALYSIS = "sentiment-analysis"
    SUBTITLING = "subtitling"
    MULTI_LABEL_TEXT_CLASSIFICATION = "multi-label-text-classification"
    VISEME_GENERATION = "viseme-generation"
    TEXT_SEGMENATION = "text-segmenation"
    ZERO_SHOT_CLASSIFICATION = "zero-shot-classification"
    TEXT_GENERATION = "text-generation"
    AUDIO_INTENT_DETECTION = "audio-intent-detection"
    ENTITY_LINKING = "entity-linking"
    CONNECTION = "connection"
    VISUAL_QUESTION_ANSWERING = "visual-question-answering"
    LOGLIKELIHOOD = "loglikelihood"
    LANGUAGE_IDENTIFICATION_AUDIO = "language-identification-audio"
    FACT_CHECKING = "fact-checking"
    TABLE_QUESTION_ANSWERING = "table-question-answering"
    SPEECH_CLASSIFICATION = "speech-classification"
    INVERSE_TEXT_NORMALIZATION = "inverse-text-normalization"
    MULTI_CLASS_IMAGE_CLASSIFICATION = "multi-class-image-classification"
    ASR_GENDER_CLASSIFICATION = "asr-gender-classification"
    SUMMARIZATION = "summarization"
    TOPIC_MODELING = "topic-modeling"
    AUDIO_RECONSTRUCTION = "audio-reconstruction"
    TEXT_EMBEDDING = "text-embedding"
    DETECT_LANGUAGE_FROM_TEXT = "detect-language-from-text"
    EXTRACT_AUDIO_FROM_VIDEO = "extract-audio-from-video"
    SCENE_DETECTION = "scene-detection"
    TEXT_TO_IMAGE_GENERATION = "text-to-image-generation"
    AUTO_MASK_GENERATION = "auto-mask-generation"
    AUDIO_LANGUAGE_IDENTIFICATION = "audio-language-identification"
    FACIAL_RECOGNITION = "facial-recognition"
    QUESTION_ANSWERING = "question-answering"
    IMAGE_IMPAINTING = "image-impainting"
    TEXT_RECONSTRUCTION = "text-reconstruction"
    SCRIPT_EXECUTION = "script-execution"
    SEMANTIC_SEGMENTATION = "semantic-segmentation"
    AUDIO_EMOTION_DETECTION = "audio-emotion-detection"
    IMAGE_CAPTIONING = "image-captioning"
    SPLIT_ON_LINEBREAK = "split-on-linebreak"
    STYLE_TRANSFER = "style-transfer"
    BASE_MODEL = "base-model"
    IMAGE_MANIPULATION = "image-manipulation"
    VIDEO_EMBEDDING = "video-embedding"
    DIALECT_DETECTION = "dialect-detection"
    FILL_TEXT_MASK = "fill-text-mask"
    ACTIVITY_DETECTION = "activity-detection"
    SELECT_SUPPLIER_FOR_TRANSLATION = "select-supplier-for-translation"
    EXPRESSION_DETECTION = "expression-detection"
    VIDEO_GENERATION = "video-generation"
    IMAGE_ANALYSIS = "image-analysis"
    UTILITIES = "utilities"
    NOISE_REMOVAL = "noise-removal"
    IMAGE_AND_VIDEO_ANALYSIS = "image-and-video-analysis"
    KEYWORD_EXTRACTION = "keyword-extraction"
    SPLIT_ON_SILENCE = "split-on-silence"
    INTENT_RECOGNITION = "intent-recognition"
    DEPTH_ESTIMATION = "depth-estimation"
    CONNECTOR = "connector"
    SPEAKER_RECOGNITION = "speaker-recognition"
    SYNTAX_ANALYSIS = "syntax-analysis"
    ENTITY_SENTIMENT_ANALYSIS = "entity-sentiment-analysis"
    CLASSIFICATION_METRIC = "classification-metric"
    TEXT_DETECTION = "text-detection"
    GUARDRAILS = "guardrails"
    EMOTION_DETECTION = "emotion-detection"
    VIDEO_FORCED_ALIGNMENT = "video-forced-alignment"
    IMAGE_CONTENT_MODERATION = "image-content-moderation"
    TEXT_SUMMARIZATION = "text-summarization"
    IMAGE_TO_VIDEO_GENERATION = "image-to-video-generation"
    VIDEO_UNDERSTANDING = "video-understanding"
    TEXT_GENERATION_METRIC_DEFAULT = "text-generation-metric-default"
    TEXT_TO_VIDEO_GENERATION = "text-to-video-generation"
    VIDEO_LABEL_DETECTION = "video-label-detection"
    TEXT_SPAM_DETECTION = "text-spam-detection"
    TEXT_CONTENT_MODERATION = "text-content-moderation"
    AUDIO_TRANSCRIPT_IMPROVEMENT = "audio-transcript-improvement"
    AUDIO_TRANSCRIPT_ANALYSIS = "audio-transcript-analysis"
    SPEECH_NON_SPEECH_CLASSIFICATION = "speech-non-speech-classification"
    AUDIO_GENERATION_METRIC = "audio-generation-metric"
    NAMED_ENTITY_RECOGNITION = "named-entity-recognition"
    SPEECH_SYNTHESIS = "speech-synthesis"
    DOCUMENT_INFORMATION_EXTRACTION = "document-information-extraction"
    OCR = "ocr"
    SUBTITLING_TRANSLATION = "subtitling-translation"
    TEXT_TO_AUDIO = "text-to-audio"
    MULTILINGUAL_SPEECH_RECOGNITION = "multilingual-speech-recognition"
    OFFENSIVE_LANGUAGE_IDENTIFICATION = "offensive-language-identification"
    BENCHMARK_SCORING_MT = "benchmark-scoring-mt"
    SPEAKER_DIARIZATION_AUDIO = "speaker-diarization-audio"
    VOICE_CLONING = "voice-cloning"
    SEARCH = "search"
    OBJECT_DETECTION = "object-detection"
    DIACRITIZATION = "diacritization"
    SPEAKER_DIARIZATION_VIDEO = "speaker-diarization-video"
    AUDIO_FORCED_ALIGNMENT = "audio-forced-alignment"
    TOKEN_CLASSIFICATION = "token-classification"
    TOPIC_CLASSIFICATION = "topic-classification"
    INTENT_CLASSIFICATION = "intent-classification"
    VIDEO_CONTENT_MODERATION = "video-content-moderation"
    TEXT_GENERATION_METRIC = "text-generation-metric"
    IMAGE_EMBEDDING = "image-embedding"
    IMAGE_LABEL_DETECTION = "image-label-detection"
    IMAGE_COLORIZATION = "image-colorization"
    METRIC_AGGREGATION = "metric-aggregation"
    INSTANCE_SEGMENTATION = "instance-segmentation"
    OTHER_MULTIPURPOSE = "other-(multipurpose)"
    SPEECH_TRANSLATION = "speech-translation"
    REFERENCELESS_TEXT_GENERATION_METRIC_DEFAULT = "referenceless-text-generation-metric-default"
    REFERENCELESS_TEXT_GENERATION_METRIC = "referenceless-text-generation-metric"
    TEXT_DENORMALIZATION = "text-denormalization"
    IMAGE_COMPRESSION = "image-compression"
    TEXT_CLASSIFICATION = "text-classification"
    ASR_AGE_CLASSIFICATION = "asr-age-classification"
    ASR_QUALITY_ESTIMATION = "asr-quality-estimation"

    @classmethod
    def parse(cls, value: object) -> Function | str | None:
        """Map a wire value (slug, ``{"id": slug}`` dict, enum or None) to a Function, else the string."""
        if value is None or isinstance(value, Function):
            return value
        if isinstance(value, dict):
            value = value.get("id") or value.get("name")
            if value is None:
                return None
        text = str(value)
        try:
            return cls(text)
        except ValueError:
            return text


# -- search filters (ModelFactory.list) ------------------------------------------------------------


class SortBy(Enum):
    """What ``ModelFactory.list(sort_by=...)`` sorts by: the SDK 0.2.48's members and values, and NAME."""

    CREATION_DATE = "createdAt"
    PRICE = "normalizedPrice"
    POPULARITY = "totalSubscribed"
    NAME = "name"  # not the SDK's: the name, alphabetically


class SortOrder(Enum):
    """The direction of ``ModelFactory.list(sort_order=...)``: the SDK 0.2.48's members and wire values."""

    ASCENDING = 1
    DESCENDING = -1


E = TypeVar("E", bound=Enum)


def member_of(enum: type[E], value: Any, what: str) -> E:
    """``value`` as a member of ``enum``: a member, its value, or its name (any case); else a
    one-line ParameterError naming ``what``."""
    if isinstance(value, enum):
        return value
    for member in enum:
        if value == member.value or (isinstance(value, str) and value.upper() == member.name):
            return member
    names = ", ".join(f"{enum.__name__}.{m.name}" for m in enum)
    raise ParameterError(f"{what} must be one of {names}; got {value!r}")


#: the short sort words of the magic's ``--sort`` and the browser ("-" first: descending)
SORT_WORDS: dict[str, SortBy] = {
    "name": SortBy.NAME,
    "created": SortBy.CREATION_DATE,
    "price": SortBy.PRICE,
    "popular": SortBy.POPULARITY,
}


def sort_of_word(word: str) -> tuple[SortBy, SortOrder]:
    """``(SortBy, SortOrder)`` of a sort word such as "name" or "-created"."""
    by = SORT_WORDS.get(word.removeprefix("-"))
    if by is None:
        choices = "|".join(w for key in SORT_WORDS for w in (key, f"-{key}"))
        raise ParameterError(f"a sort is one of {choices}, got {word!r}")
    return by, SortOrder.DESCENDING if word.startswith("-") else SortOrder.ASCENDING


def word_of_sort(sort_by: Any, sort_order: Any = SortOrder.ASCENDING) -> str:
    """The sort word of ``sort_by`` (a ``SortBy``, its name or value) and ``sort_order``."""
    by = member_of(SortBy, sort_by, "sort_by")
    order = member_of(SortOrder, SortOrder.ASCENDING if sort_order is None else sort_order, "sort_order")
    word = next(w for w, member in SORT_WORDS.items() if member is by)
    return f"-{word}" if order is SortOrder.DESCENDING else word


#: the SDK 0.2.48's languages: "code BASE_NAME: dialect; dialect" (each dialect is the member
#: BASE_NAME_DIALECT, in capitals with "_" for anything else); the values are the SDK's dicts
_LANGUAGES = """
af AFRIKAANS: South Africa
sq ALBANIAN: Albania
hy ARMENIAN: Armenia
asm ASSAMESE
bn BANGLA: Bangladesh; India
eu BASQUE: Spain
bg BULGARIAN: Bulgary; Bulgaria
ca CATALAN: Spain
ceb CEBUANO
co CORSICAN
cs CZECH: Czech Republic; Czech
dv DIVEHI
eo ESPERANTO
et ESTONIAN: Estonia
fj FIJIAN
fi FINNISH: Finland
de GERMAN: Germany; Austria; Switzerland
el GREEK: Greece
ht HAITIAN
ha HAUSA
haw HAWAIIAN
isl ICELANDIC
ig IGBO
id INDONESIAN: Indonesia
iu INUKTITUT
ga IRISH: Ireland
ja JAPANESE: Japan
kk KAZAKH: Kazakhstan
rw KINYARWANDA
tlh KLINGON
ko KOREAN: Korea
ku KURDISH
ky KYRGYZ
lb LUXEMBOURGISH: South Africa
mk MACEDONIAN: North Macedonia
mt MALTESE: Malta
mi MAORI
mn MONGOLIAN: Mongolia
am AMHARIC: Ethiopia
or ODIA
ro ROMANIAN: Romania
ar ARABIC: Classical Arabic; United Arab Emirates; Egypt; Morocco; Saudi Arabia; Modern Standard Arabic;
    Qatar; Iraq; Oman; Tunisia; Yemen; Kuwait; Palestine; Algeria; Gulf; Bahrain; Jordan; Libya; Israel;
    Auto-Detect; Lebanon; Syria
az AZERBAIJANI: Azerbaijan
ba BASHKIR
bs BOSNIAN: Bosnia
be BELARUSIAN
my BURMESE: Myanmar
da DANISH: Denmark
ny NYANJA
ps PASHTO
pl POLISH: Poland
pa PUNJABI: India; Gurmukhi India
oto QUERETARO
ru RUSSIAN: Russia
sr SERBIAN: Serbia
sn SHONA
sd SINDHI
sk SLOVAK: Slovakia
so SOMALI: Somalia
sw SWAHILI: Kenya; Tanzania
tl TAGALOG
ty TAHITIAN
tg TAJIK
tt TATAR
te TELUGU: India
bo TIBETAN
to TONGAN
tr TURKISH: Turkey
uz UZBEK: Uzbekistan
vi VIETNAMESE: Vietnam
cy WELSH
xh XHOSA
yua YUCATEC
zu ZULU
fa PERSIAN: Iran; Persian
pt PORTUGUESE: Portugal; Brazil; European; Brazilian
zh CHINESE: Mandarin; Hong Kong; Taiwanese, Mandarin; Traditional
hr CROATIAN: Croatia
fil FILIPINO: Philippines; Tagalog
gu GUJARATI: Indian; India
hmn HMONG
lv LATVIAN: Latvia
lt LITHUANIAN: Lithuania
ug UYGHUR
prs DARI
nl DUTCH: Belgium; Netherlands
en ENGLISH: United States; United Kingdom; India; Welsh; Australia; Nigeria; New Zealand; Kenya;
    Philippines; Indian; Australian; Hong Kong; South Africa; Ghana; Singapore; Ireland; Canada; Tanzania;
    Scottish; Pakistan
fr FRENCH: Canada; France; Switzerland; Belgium; Canadian
ka GEORGIAN: Georgia
gl GALICIAN: Spain
fy FRISIAN
he HEBREW: Israel
hu HUNGARIAN: Hungary
hi HINDI: India
it ITALIAN: Italy; Switzerland
kn KANNADA: India
jv JAVANESE: Indonesia
km KHMER: Cambodia
lo LAO: Laos
mg MALAGASY
ms MALAY: Malaysia
ml MALAYALAM: India
mr MARATHI: India
ne NEPALI: Nepal
no NORWEGIAN: Norway
sm SAMOAN
st SESOTHO
gd SCOTS_GAELIC
si SINHALA: Sri Lanka
sl SLOVENIAN: Slovenia
sv SWEDISH: Sweden
yo YORUBA
es SPANISH: Dominican Republic; Mexico; Puerto Rico; Equatorial Guinea; Mexican; Venezuela; Guatemala;
    Nicaragua; Paraguay; Uruguay; Colombia; Panama; United States; Ecuador; Argentina; Spain; Honduras;
    Chile; Cuba; Costa Rica; Peru; El Salvador; Bolivia; European
su SUNDANESE: Indonesia
tk TURKMEN
ta TAMIL: Sri Lanka; India; Singapore; Malaysia
th THAI: Thailand
tir TIGRINYA
ukr UKRAINIAN: Ukraine
yi YIDDISH
ur URDU: Pakistan; India
"""

#: region codes (ISO 3166) of the dialects named after a country, for codes like "en-US"
_REGIONS = dict(
    pair.strip().split("=")
    for pair in """
AE=United Arab Emirates; AL=Albania; AM=Armenia; AR=Argentina; AT=Austria; AU=Australia;
AZ=Azerbaijan; BA=Bosnia; BD=Bangladesh; BE=Belgium; BG=Bulgaria; BH=Bahrain; BO=Bolivia;
BR=Brazil; CA=Canada; CH=Switzerland; CL=Chile; CO=Colombia; CR=Costa Rica; CU=Cuba;
CZ=Czech Republic; DE=Germany; DK=Denmark; DO=Dominican Republic; DZ=Algeria; EC=Ecuador;
EE=Estonia; EG=Egypt; ES=Spain; ET=Ethiopia; FI=Finland; FR=France; GB=United Kingdom; GE=Georgia;
GH=Ghana; GQ=Equatorial Guinea; GR=Greece; GT=Guatemala; HK=Hong Kong; HN=Honduras; HR=Croatia;
HU=Hungary; ID=Indonesia; IE=Ireland; IL=Israel; IN=India; IQ=Iraq; IR=Iran; IT=Italy; JO=Jordan;
JP=Japan; KE=Kenya; KH=Cambodia; KR=Korea; KW=Kuwait; KZ=Kazakhstan; LA=Laos; LB=Lebanon;
LK=Sri Lanka; LT=Lithuania; LV=Latvia; LY=Libya; MA=Morocco; MK=North Macedonia; MM=Myanmar;
MN=Mongolia; MT=Malta; MX=Mexico; MY=Malaysia; NG=Nigeria; NI=Nicaragua; NL=Netherlands; NO=Norway;
NP=Nepal; NZ=New Zealand; OM=Oman; PA=Panama; PE=Peru; PH=Philippines; PK=Pakistan; PL=Poland;
PR=Puerto Rico; PS=Palestine; PT=Portugal; PY=Paraguay; QA=Qatar; RO=Romania; RS=Serbia; RU=Russia;
SA=Saudi Arabia; SE=Sweden; SG=Singapore; SI=Slovenia; SK=Slovakia; SO=Somalia; SV=El Salvador;
SY=Syria; TH=Thailand; TN=Tunisia; TR=Turkey; TZ=Tanzania; UA=Ukraine; US=United States;
UY=Uruguay; UZ=Uzbekistan; VE=Venezuela; VN=Vietnam; YE=Yemen; ZA=South Africa
""".replace("\n", " ").split("; ")
)


def _language_members() -> list[tuple[str, dict[str, str]]]:
    members: list[tuple[str, dict[str, str]]] = []
    for line in re.sub(r"\n +", " ", _LANGUAGES).strip().splitlines():  # indented: continued
        head, _, dialects = line.partition(": ")
        code, base = head.split(" ")
        members.append((base, {"language": code, "dialect": ""}))
        for dialect in filter(None, dialects.split("; ")):
            suffix = re.sub(r"[^A-Z0-9]+", "_", dialect.upper()).strip("_")
            members.append((f"{base}_{suffix}", {"language": code, "dialect": dialect}))
    return members


class Language(Enum):
    """The SDK 0.2.48's languages, for ``ModelFactory.list(source_languages=..., target_languages=...)``:
    each value is ``{"language": code, "dialect": name}``; ``Language.parse("en-US")`` finds one by code."""

    _ignore_ = "members name value"
    members = vars()  # the members, from the table above (as the enum module documents _ignore_)
    for name, value in _language_members():
        members[name] = value

    @property
    def code(self) -> str:
        """The language code ("en"), with the region for a dialect named after a country ("en-US")."""
        value: dict[str, str] = self.value
        region = next((r for r, name in _REGIONS.items() if name == value["dialect"]), None)
        return f"{value['language']}-{region}" if region else value["language"]

    @classmethod
    def parse(cls, value: object) -> Language:
        """A ``Language`` from a member, its name ("ENGLISH_UNITED_STATES") or a code ("en", "en-US").

        Raises ParameterError (one line, naming ``value``) for anything else.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, Enum) and isinstance(value.value, dict):  # another library's Language
            value = value.name
        if not isinstance(value, str) or not value.strip():
            raise ParameterError(
                f"a language must be a Language or a code like 'en' or 'en-US', got {value!r}"
            )
        text = value.strip()
        if text.upper() in cls.__members__:
            return cls.__members__[text.upper()]
        code, _, region = text.replace("_", "-").partition("-")
        dialect = _REGIONS.get(region.upper(), "") if region else ""
        wanted = {"language": code.lower(), "dialect": dialect}
        found = next((m for m in cls if m.value == wanted), None)
        if found is None or (region and not dialect):
            raise ParameterError(
                f"unknown language {value!r}: give a code like 'en' or 'en-US' (a region of a dialect "
                "the Language enum has) or a Language member"
            )
        return found
