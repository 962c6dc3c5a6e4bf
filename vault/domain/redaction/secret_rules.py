"""Secret detectors: provider token formats, key blocks, credentials in context.

Patterns are written from each provider's published token format (docs/redaction.md lists the
source of each); none is copied from another scanner's rule file. Conventions that keep them
linear-time: a pattern starts with a literal prefix or a look-behind that pins it to the start
of a run, every repetition is bounded or stops on a class the next element cannot match.
"""

from __future__ import annotations

from vault.domain.redaction.checks import (
    jwt_ok,
    looks_random,
    token_ok,
    value_ok,
)
from vault.domain.redaction.engine import Rule

__all__ = ["SECRET_RULES"]

_B = "A-Za-z0-9_\\-"  # base64url alphabet
_A = "A-Za-z0-9"
_START = f"(?<![{_B}])"  # not inside a longer token
_END = f"(?![{_B}])"
_ENDW = f"(?![{_A}])"
_DIGITS = "0123456789"
_PUNCT = "!#$%&()*+,-./:;<=>?@[\\]^_`{|}~"  # ASCII punctuation but quotes


def _url_password_ok(text: str, start: int, end: int) -> bool:
    """Any password but a port number or a stand-in (``${DB_PASSWORD}``)."""
    value = text[start:end]
    return not value.isdigit() and (len(value) == 1 or value_ok(value))


def _value_random(text: str, start: int, end: int) -> bool:
    value = text[start:end]
    return value_ok(value) and looks_random(value)


def _value_plain(text: str, start: int, end: int) -> bool:
    return value_ok(text[start:end])


def _basic_ok(text: str, start: int, end: int) -> bool:
    """HTTP Basic credentials: base64 of ``user:password`` (RFC 7617)."""
    import base64
    import binascii

    try:
        decoded = base64.b64decode(text[start:end], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded


def _said_ok(text: str, start: int, end: int) -> bool:
    value = text[start:end].rstrip(".,;!?")
    has_letter = any(c.isalpha() for c in value)
    has_other = any(not c.isalpha() for c in value)
    return value_ok(value) and has_letter and has_other and len(value) >= 6


# Separator between a credential name and its value: `=`, `:`, `:=`, `=>`, with optional
# closing quote on the name (JSON, YAML, .env, INI, connection strings, Python kwargs).
_SEP = r"""["'`]?\]?[ \t]{0,4}(?:=>|:=|==|[=:])[ \t]{0,4}(?:[rbf]?["'`])?"""
# Both name lists start with a character class (the rest of each name behind a look-behind on
# its first letter): ``re`` then skips to those letters at C speed instead of trying every
# alternative at every position (4-6x faster on ordinary text; the same language).
_PW_NAMES = (
    r"(?:[pkc](?:(?<=p)(?:assword|asswd|assphrase|asswort)|(?<=k)ennwort|(?<=c)ontrase(?:n|\xf1)a)"
    r"[A-Za-z0-9_.-]{0,32}"
    r"|p(?<![A-Za-z]p)(?:ass|wd|w)(?:[_.-][A-Za-z0-9_.-]{0,30})?(?![A-Za-z]))"
)
# Names of credentials, not a credential (S105 is a false alarm).
_SECRET_NAMES = (
    r"[acpkst](?:(?<=s)(?:ecret|ignature|haredaccesskey|(?<![A-Za-z]s)ig)|(?<=t)oken"  # noqa: S105
    r"|(?<=a)(?:pi[_.-]?key|ccess[_.-]?key|ccountkey|uth(?!or))|(?<=c)redential"
    r"|(?<=p)rivate[_.-]?key|(?<![A-Za-z]k)(?<=k)ey)"
)
_NAME_TAIL = "[A-Za-z0-9_.-]{0,32}"


def _not_filler(text: str, start: int, end: int) -> bool:
    """A prefixed token whose body is not a documentation filler (``xxxx``, ``****``, ``0000``)."""
    token = text[start:end]
    body = token[max(token.rfind("_"), token.find("-"), token.find(".")) + 1 :] or token
    return not set(body) <= set("xX*0.-_")


# (name, placeholder type, pattern, triggers, a character every match holds): fixed prefixes
# only, so that each is announced by its prefix and costs nothing on texts without it.
_PREFIXED: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    (
        "dynatrace-token",
        "DYNATRACE_TOKEN",
        r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}",
        ("dt0c01.",),
        ".",
    ),
    (
        "flutterwave-key",
        "FLUTTERWAVE_KEY",
        r"FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{32}-X|FLWSECK-[a-hA-H0-9]{32}-X",
        ("flwseck_", "flwpubk_", "flwseck-"),
        "-",
    ),
    (
        "new-relic-key",
        "NEW_RELIC_KEY",
        r"NR(?:AK|JS|II)-[A-Za-z0-9]{27,32}",
        ("nrak-", "nrjs-", "nrii-"),
        "-",
    ),
    (
        "planetscale-token",
        "PLANETSCALE_TOKEN",
        r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.=-]{32,64}",
        ("pscale_",),
        "_",
    ),
    ("pulumi-token", "PULUMI_TOKEN", r"pul-[a-f0-9]{40}", ("pul-",), "-"),
    ("readme-key", "README_KEY", r"rdme_[a-z0-9]{70}", ("rdme_",), "_"),
    ("rubygems-key", "RUBYGEMS_KEY", r"rubygems_[a-f0-9]{48}", ("rubygems_",), "_"),
    ("brevo-key", "BREVO_KEY", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}", ("xkeysib-",), "-"),
    ("shippo-token", "SHIPPO_TOKEN", r"shippo_(?:live|test)_[a-f0-9]{40}", ("shippo_",), "_"),
    (
        "terraform-cloud-token",
        "TERRAFORM_TOKEN",
        r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",
        (".atlasv1.",),
        ".",
    ),
    (
        "mapbox-secret-token",
        "MAPBOX_TOKEN",
        r"sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",
        ("sk.eyj",),
        ".",
    ),
    ("groq-key", "GROQ_KEY", r"gsk_[A-Za-z0-9]{52}", ("gsk_",), "_"),
    ("replicate-token", "REPLICATE_TOKEN", r"r8_[A-Za-z0-9]{37}", ("r8_",), "_"),
    ("xai-key", "XAI_KEY", r"xai-[A-Za-z0-9]{80}", ("xai-",), "-"),
    ("perplexity-key", "PERPLEXITY_KEY", r"pplx-[A-Za-z0-9]{48}", ("pplx-",), "-"),
    ("openrouter-key", "OPENROUTER_KEY", r"sk-or-v1-[a-f0-9]{64}", ("sk-or-v1-",), "-"),
    (
        "langsmith-key",
        "LANGSMITH_KEY",
        r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",
        ("lsv2_",),
        "_",
    ),
    ("pinecone-key", "PINECONE_KEY", r"pcsk_[A-Za-z0-9_]{50,100}", ("pcsk_",), "_"),
    ("flyio-token", "FLYIO_TOKEN", r"fo1_[A-Za-z0-9_-]{43}", ("fo1_",), "_"),
    ("prefect-key", "PREFECT_KEY", r"pnu_[A-Za-z0-9]{36}", ("pnu_",), "_"),
    ("typeform-token", "TYPEFORM_TOKEN", r"tfp_[A-Za-z0-9_.=-]{59}", ("tfp_",), "_"),
    ("contentful-token", "CONTENTFUL_TOKEN", r"CFPAT-[A-Za-z0-9_-]{43}", ("cfpat-",), "-"),
    ("frameio-token", "FRAMEIO_TOKEN", r"fio-u-[A-Za-z0-9_=-]{64}", ("fio-u-",), "-"),
    ("clojars-token", "CLOJARS_TOKEN", r"CLOJARS_[a-z0-9]{60}", ("clojars_",), "_"),
    ("duffel-token", "DUFFEL_TOKEN", r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}", ("duffel_",), "_"),
    ("scalingo-token", "SCALINGO_TOKEN", r"tk-us-[A-Za-z0-9_-]{48}", ("tk-us-",), "-"),
    ("infracost-key", "INFRACOST_KEY", r"ico-[A-Za-z0-9]{32}", ("ico-",), "-"),
    ("octopus-deploy-key", "OCTOPUS_KEY", r"API-(?=[A-Z]{0,25}[0-9])[A-Z0-9]{26}", ("api-",), "-"),
    (
        "harness-token",
        "HARNESS_TOKEN",
        r"pat\.[A-Za-z0-9_-]{22}\.[0-9a-f]{24}\.[A-Za-z0-9]{20}",
        ("pat.",),
        ".",
    ),
    (
        "onepassword-token",
        "ONEPASSWORD_TOKEN",
        r"ops_eyJ[A-Za-z0-9+/=_-]{250,8000}",
        ("ops_eyj",),
        "_",
    ),
    (
        "google-oauth-access-token",
        "GCP_ACCESS_TOKEN",
        r"ya29\.[A-Za-z0-9_-]{30,2048}",
        ("ya29.",),
        ".",
    ),
    (
        "cloudflare-origin-ca-key",
        "CLOUDFLARE_KEY",
        r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
        ("v1.0-",),
        "-",
    ),
    ("adobe-client-secret", "ADOBE_CLIENT_SECRET", r"p8e-[A-Za-z0-9_-]{32}", ("p8e-",), "-"),
    (
        "hubspot-private-app-token",
        "HUBSPOT_TOKEN",
        r"pat-(?:na|eu)1-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}",
        ("pat-na1-", "pat-eu1-"),
        "-",
    ),
    (
        "supabase-token",
        "SUPABASE_TOKEN",
        r"sb(?:p|_secret)_[A-Za-z0-9_-]{32,64}",
        ("sbp_", "sb_secret_"),
        "_",
    ),
    ("render-key", "RENDER_KEY", r"rnd_[A-Za-z0-9]{32}", ("rnd_",), "_"),
)


SECRET_RULES: tuple[Rule, ...] = (
    # --- key blocks ----------------------------------------------------------------------------
    Rule(
        "private-key-block",
        "PRIVATE_KEY",
        # The body may not contain "-----": it stops at the END line (or the next marker),
        # so each character is scanned by one BEGIN at most. A truncated paste is still
        # redacted up to the next marker. Also covers GCP service-account JSON private_key.
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[^-]|-(?!----))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?![A-Za-z0-9_]))?",
        triggers=("-----begin ",),
        confidence=1.0,
        needs="-",
    ),
    Rule(
        "putty-private-key",
        "PRIVATE_KEY",
        r"Private-Lines: \d{1,4}(?:\r?\n|\\n)(?:[A-Za-z0-9+/=]{1,80}(?:\r?\n|\\n)){1,200}",
        triggers=("private-lines:",),
        confidence=1.0,
        needs="-",
    ),
    Rule(
        "age-secret-key",
        "PRIVATE_KEY",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        triggers=("age-secret-key-1",),
        confidence=1.0,
        needs="-",
    ),
    # --- cloud ---------------------------------------------------------------------------------
    Rule(
        "aws-access-key-id",
        "AWS_ACCESS_KEY",
        r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)"
        r"[A-Z0-9]{16}(?![A-Z0-9])",
        # Case-sensitive gate led by a literal: found at C speed, unlike a lower-cased trigger.
        gate=r"A(?:3T|KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)",
        confidence=0.95,
        needs="A",
    ),
    Rule(
        "aws-secret-access-key",
        "AWS_SECRET_KEY",
        # 40 base64 characters are too common to redact on sight (hashes, ids): only when
        # assigned to an AWS/secret-looking name.
        r"(?:aws_?)?(?:secret|access)(?:_?access)?(?:_?key)?"
        + _SEP
        + r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        triggers=("secret", "access"),
        ignore_case=True,
        confidence=0.95,
        needs="=:",
    ),
    Rule(
        "gcp-api-key",
        "GCP_API_KEY",
        rf"AIza[{_B}]{{35,}}",
        gate="AIza",
        confidence=0.95,
        needs="A",
    ),
    Rule(
        "gcp-oauth-client-secret",
        "GCP_CLIENT_SECRET",
        rf"GOCSPX-[{_B}]{{28}}{_END}",
        triggers=("gocspx-",),
        confidence=0.95,
        needs="-",
    ),
    Rule(
        "gcp-service-account-key-id",
        "GCP_SERVICE_ACCOUNT_KEY",
        r'"private_key_id"\s{0,4}:\s{0,4}"(?P<value>[0-9a-f]{40})"',
        triggers=("private_key_id",),
        confidence=0.95,
        needs="_",
    ),
    Rule(
        "azure-storage-account-key",
        "AZURE_STORAGE_KEY",
        r"(?:AccountKey|SharedAccessKey|PrimaryKey|SecondaryKey)\s{0,2}=\s{0,2}"
        r"(?P<value>[A-Za-z0-9+/]{40,100}={0,2})",
        triggers=("accountkey", "sharedaccesskey", "primarykey", "secondarykey"),
        ignore_case=True,
        confidence=0.95,
        needs="=",
    ),
    Rule(
        "azure-sas-signature",
        "AZURE_SAS_TOKEN",
        r"(?<![A-Za-z0-9])sig=(?P<value>[A-Za-z0-9%+/]{20,120}(?:=|%3[Dd]){0,2})",
        triggers=("sig=",),
        confidence=0.9,
        needs="=",
    ),
    Rule(
        "azure-ad-client-secret",
        "AZURE_CLIENT_SECRET",
        r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        triggers=tuple(f"{digit}q~" for digit in range(10)),
        confidence=0.9,
        needs="~",
    ),
    Rule(
        "digitalocean-token",
        "DIGITALOCEAN_TOKEN",
        r"do[por]_v1_[a-f0-9]{64}(?![a-f0-9])",
        triggers=("dop_v1_", "doo_v1_", "dor_v1_"),
        confidence=0.95,
        needs="_",
    ),
    Rule(
        "heroku-api-key",
        "HEROKU_API_KEY",
        rf"HRKU-[{_B}]{{60}}{_END}|(?i:heroku)[^\n]{{0,40}}?"
        r"(?P<value>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})",
        triggers=("hrku-", "heroku"),
        confidence=0.9,
        needs="-",
    ),
    Rule(
        "databricks-token",
        "DATABRICKS_TOKEN",
        r"(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9])",
        triggers=("dapi",),
        confidence=0.95,
        needs=_DIGITS,
    ),
    # --- source control, packages, CI ----------------------------------------------------------
    Rule(
        "github-token",
        "GITHUB_TOKEN",
        rf"(?<![{_A}])gh[pousr]_[{_A}]{{36,}}{_ENDW}",
        triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        validate=token_ok,
        confidence=0.97,
        needs="_",
    ),
    Rule(
        "github-fine-grained-pat",
        "GITHUB_TOKEN",
        rf"github_pat_[{_A}_]{{22,}}{_ENDW}",
        triggers=("github_pat_",),
        confidence=0.97,
        needs="_",
    ),
    Rule(
        "gitlab-token",
        "GITLAB_TOKEN",
        # Personal/project/group, deploy, runner, CI build, feed, SCIM, feature-flag, OAuth
        # and agent tokens; newer ones carry a routing suffix ".01.xxxx".
        r"(?<![A-Za-z0-9])(?:glpat|gldt|glrt|glcbt|glft|glsoat|glffct|gltst|glagent|gloas|glimt"
        r"|glptt)-(?:[0-9]{2}_)?[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]{2,40}){0,2}"
        r"(?![A-Za-z0-9_-])|GR1348941[A-Za-z0-9_-]{20,50}(?![A-Za-z0-9_-])",
        triggers=(
            "glpat-",
            "gldt-",
            "glrt-",
            "glcbt-",
            "glft-",
            "glsoat-",
            "glffct-",
            "gltst-",
            "glagent-",
            "gloas-",
            "glimt-",
            "glptt-",
            "gr1348941",
        ),
        validate=lambda text, s, e: _gitlab_ok(text[s:e]),
        confidence=0.95,
        needs="-" + _DIGITS,
    ),
    Rule(
        "bitbucket-app-password",
        "BITBUCKET_TOKEN",
        r"(?<![A-Za-z0-9])ATBB[A-Za-z0-9_=.-]{24,64}(?![A-Za-z0-9_=.-])",
        gate="ATBB",
        confidence=0.9,
        needs="A",
    ),
    Rule(
        "npm-token",
        "NPM_TOKEN",
        rf"(?<![{_A}])npm_[{_A}]{{36,}}",
        triggers=("npm_",),
        validate=token_ok,
        confidence=0.95,
        needs="_",
    ),
    Rule(
        "npmrc-auth",
        "NPM_TOKEN",
        # //registry.example/:_authToken=... in .npmrc (the registry URL is kept).
        r"//[A-Za-z0-9.-]{1,253}(?::\d{1,5})?(?:/[^\s/:]{0,64}){0,8}/:_(?:authToken|password|auth)"
        r"\s{0,2}=\s{0,2}(?P<value>[^\s\"']{6,512})",
        triggers=(":_authtoken", ":_password", ":_auth"),
        validate=_value_plain,
        confidence=0.95,
        needs="/",
    ),
    Rule(
        "pypi-token",
        "PYPI_TOKEN",
        # A macaroon whose base64 starts with the issuer: pypi.org or test.pypi.org.
        rf"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[{_B}]{{16,}}",
        triggers=("pypi-ag",),
        confidence=0.97,
        needs="-",
    ),
    Rule(
        "artifactory-token",
        "ARTIFACTORY_TOKEN",
        r"(?:(?<=[\s=:\"'])|^)(?:AKC[A-Za-z0-9]{10,80}|AP[0-9A-F][A-Za-z0-9]{8,80}"
        r"|cmVmdGtuOjAxOj[A-Za-z0-9]{40,80})(?![A-Za-z0-9])",
        gate=r"AKC[A-Za-z0-9]{10}|AP[0-9A-F][A-Za-z0-9]{8}|cmVmdGtuOjAxOj",
        validate=lambda text, s, e: _artifactory_ok(text[s:e]),
        confidence=0.88,
        needs="AV",  # AKC…/AP… or cmVm…,
    ),
    Rule(
        "vault-token",
        "VAULT_TOKEN",
        rf"(?<![{_A}])hv[sbr]\.[{_B}]{{24,300}}{_END}",
        triggers=("hvs.", "hvb.", "hvr."),
        confidence=0.95,
        needs=".",
    ),
    Rule(
        "doppler-token",
        "DOPPLER_TOKEN",
        r"(?<![A-Za-z0-9])dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}(?![A-Za-z0-9])",
        triggers=("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."),
        confidence=0.95,
        needs=".",
    ),
    Rule(
        "postman-api-key",
        "POSTMAN_API_KEY",
        r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}(?![A-Za-z0-9])",
        triggers=("pmak-",),
        confidence=0.97,
        needs="-",
    ),
    Rule(
        "grafana-token",
        "GRAFANA_TOKEN",
        r"(?<![A-Za-z0-9])(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})"
        r"(?![A-Za-z0-9])",
        triggers=("glsa_", "glc_"),
        confidence=0.95,
        needs="_",
    ),
    Rule(
        "sentry-token",
        "SENTRY_TOKEN",
        r"(?<![A-Za-z0-9])(?:sntrys_[A-Za-z0-9+/=_-]{40,400}|sntryu_[a-f0-9]{64})"
        r"(?![A-Za-z0-9])|(?<![A-Za-z0-9])(?P<value>[a-f0-9]{32})@o?[0-9]{0,12}\.?ingest\.",
        triggers=("sntrys_", "sntryu_", "ingest."),
        confidence=0.95,
        needs="_@",
    ),
    # --- chat, SaaS, AI ------------------------------------------------------------------------
    Rule(
        "slack-token",
        "SLACK_TOKEN",
        r"(?<![A-Za-z0-9])(?:xox[baprseo]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"
        r"|xoxe\.xox[bp]-\d-[A-Za-z0-9-]{20,})(?![A-Za-z0-9-])",
        triggers=("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-", "xoxe.", "xoxo-", "xapp-"),
        confidence=0.95,
        needs="-",
    ),
    Rule(
        "slack-webhook",
        "SLACK_WEBHOOK",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<value>[A-Za-z0-9_/-]{20,200})",
        triggers=("hooks.slack.com/",),
        confidence=0.97,
        needs=".",
    ),
    Rule(
        "discord-bot-token",
        "DISCORD_TOKEN",
        # base64(user id).base64(timestamp).HMAC; an id is a number, so its base64 starts
        # with M, N or O, at most two characters into a glued token (redacted whole).
        rf"(?<![{_B}.])[{_B}]{{0,2}}[MNO][{_B}]{{23,25}}\.[{_B}]{{6}}\.[{_B}]{{27,38}}(?![{_B}.])",
        gate=rf"\.[{_B}]{{6}}\.",
        confidence=0.85,
        needs=".",
        # Every match begins where the run of base64url characters before its first "."
        # begins (neither one of them nor a "." may precede it): tried there only.
        run_before=(".", _B),
    ),
    Rule(
        "discord-mfa-token",
        "DISCORD_TOKEN",
        # The older MFA form (a rule of its own since session 6, so that the one above can be
        # found back from its dots).
        rf"mfa\.[{_B}]{{84}}{_END}",
        triggers=("mfa.",),
        confidence=0.85,
        needs=".",
    ),
    Rule(
        "discord-webhook",
        "DISCORD_WEBHOOK",
        r"discord(?:app)?\.com/api/webhooks/\d{5,30}/(?P<value>[A-Za-z0-9_-]{40,100})",
        triggers=("/api/webhooks/",),
        confidence=0.97,
        needs="/",
    ),
    Rule(
        "telegram-bot-token",
        "TELEGRAM_TOKEN",
        # In Bot API URLs the token follows "bot" (…/bot123456:AA…/sendMessage).
        r"(?:(?<=bot)|(?<![A-Za-z0-9_]))\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])",
        triggers=(":aa",),
        confidence=0.95,
        needs=":",
    ),
    Rule(
        "stripe-key",
        "STRIPE_KEY",
        r"(?<![A-Za-z0-9])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,})"
        r"(?![A-Za-z0-9])",
        triggers=("k_live_", "k_test_", "whsec_"),
        confidence=0.97,
        needs="_",
    ),
    Rule(
        "square-token",
        "SQUARE_TOKEN",
        rf"(?<![{_A}])(?:sq0atp-[{_B}]{{22}}|sq0csp-[{_B}]{{43}}|EAAA[{_B}]{{60}}){_END}",
        triggers=("sq0atp-", "sq0csp-"),
        gate="EAAA",
        confidence=0.9,
        needs="-E",
    ),
    Rule(
        "twilio-sid",
        "TWILIO_KEY",
        r"(?<![A-Za-z0-9])(?:AC|SK)[a-z0-9]{32}(?![A-Za-z0-9])",
        gate=r"AC[a-z0-9]{32}|SK[a-z0-9]{32}",  # each alternative led by its literal
        validate=lambda text, s, e: len(set(text[s + 2 : e])) > 1 or "twilio" in text.lower(),
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "sendgrid-key",
        "SENDGRID_KEY",
        rf"SG\.[{_B}]{{22}}\.[{_B}]{{43}}{_END}",
        triggers=("sg.",),
        confidence=0.97,
        needs=".",
    ),
    Rule(
        "mailgun-key",
        "MAILGUN_KEY",
        r"(?<![A-Za-z0-9])key-[a-f0-9]{32}(?![A-Za-z0-9])",
        triggers=("key-",),
        confidence=0.9,
        needs="-",
    ),
    Rule(
        "mailchimp-key",
        "MAILCHIMP_KEY",
        r"(?<![A-Za-z0-9])[a-f0-9]{32}-us\d{1,2}(?![A-Za-z0-9])",
        triggers=("-us",),
        confidence=0.95,
        needs="-",
    ),
    Rule(
        "shopify-token",
        "SHOPIFY_TOKEN",
        r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}(?![A-Za-z0-9])",
        triggers=("shpat_", "shpss_", "shpca_", "shppa_"),
        confidence=0.97,
        needs="_",
    ),
    Rule(
        "atlassian-api-token",
        "ATLASSIAN_TOKEN",
        r"(?<![A-Za-z0-9])AT(?:ATT|CTT)3[A-Za-z0-9_=-]{60,400}(?![A-Za-z0-9_=-])",
        triggers=("atatt3", "atctt3"),
        confidence=0.95,
        needs="3",
    ),
    Rule(
        "anthropic-key",
        "ANTHROPIC_KEY",
        rf"(?<![{_A}])sk-ant-[a-z]{{2,8}}\d{{2}}-[{_B}]{{32,200}}{_END}",
        triggers=("sk-ant-",),
        confidence=0.98,
        needs="-",
    ),
    Rule(
        "openai-key",
        "OPENAI_KEY",
        # Legacy keys embed "T3BlbkFJ" (base64 of "OpenAI"); project, service-account and
        # admin keys are long (over 100 characters) and carry a type prefix.
        rf"(?<![{_A}-])sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?[{_B}]{{20,250}}{_END}",
        triggers=("sk-",),
        validate=lambda text, s, e: "T3BlbkFJ" in text[s:e] or e - s >= 80,
        confidence=0.95,
        needs="-",
    ),
    Rule(
        "huggingface-token",
        "HUGGINGFACE_TOKEN",
        rf"(?<![{_A}])(?:hf_|api_org_)[{_A}]{{30,40}}{_ENDW}",
        triggers=("hf_", "api_org_"),
        validate=lambda text, s, e: looks_random(text[s:e].split("_")[-1]),
        confidence=0.9,
        needs="_",
    ),
    Rule(
        "linear-api-key",
        "LINEAR_KEY",
        r"lin_(?:api|oauth)_[A-Za-z0-9]{40}(?![A-Za-z0-9])",
        triggers=("lin_api_", "lin_oauth_"),
        confidence=0.97,
        needs="_",
    ),
    Rule(
        "notion-token",
        "NOTION_TOKEN",
        r"(?<![A-Za-z0-9_])(?:secret_[A-Za-z0-9]{43}|ntn_[A-Za-z0-9]{40,50})(?![A-Za-z0-9])",
        triggers=("secret_", "ntn_"),
        confidence=0.9,
        needs="_",
    ),
    Rule(
        "dropbox-token",
        "DROPBOX_TOKEN",
        r"(?<![A-Za-z0-9])(?:sl\.(?:u\.)?[A-Za-z0-9_-]{130,1400}"
        r"|[a-z0-9]{11}AAAAAAAAAA[a-zA-Z0-9_=-]{43})(?![A-Za-z0-9_=-])",
        triggers=("sl.",),
        gate="AAAAAAAAAA",
        confidence=0.9,
        needs=".A",
    ),
    # --- generic structures ----------------------------------------------------------------
    # --- more fixed-prefix provider formats (public formats, as gitleaks documents them) -----
    *(
        Rule(
            name,
            kind,
            rf"(?<![{_A}]){pattern}(?![{_A}])",
            triggers=triggers,
            validate=_not_filler,
            confidence=0.95,
            needs=needs,
        )
        for name, kind, pattern, triggers, needs in _PREFIXED
    ),
    Rule(
        "jwt",
        "JWT",
        rf"(?<![{_B}])eyJ[{_B}]{{5,8000}}\.eyJ[{_B}]{{5,8000}}(?:\.[{_B}]{{0,8000}}){{0,3}}",
        triggers=(".eyj",),
        validate=jwt_ok,
        confidence=0.95,
        needs=".",
    ),
    Rule(
        "url-password",
        "PASSWORD",
        # scheme://user:password@host, anchored on "://". The password runs to the last "@"
        # before the path, as in browsers; neither part can cross a "/", so a start never
        # scans past the next "://".
        r"://[^\s/?#@:\[\]]{0,256}:(?!\[PASSWORD\]@)(?P<value>[^\s/?#\"'<>]{1,512})@",
        triggers=("://",),
        validate=_url_password_ok,
        confidence=0.93,
        needs=":",
    ),
    Rule(
        "authorization-header",
        "SECRET",
        r"(?:authorization|x-api-key|x-auth-token|api-key|x-jfrog-art-api|private-token)"
        r"\s{0,2}[:=]\s{0,2}[\"']?(?:(?:bearer|token|digest|negotiate|sso-key|apikey|basic)"
        r"\s{1,4})?(?P<value>[A-Za-z0-9+/=._~:-]{8,4096})",
        triggers=("authorization", "api-key", "x-auth-token", "x-jfrog-art-api", "private-token"),
        validate=_value_plain,
        ignore_case=True,
        confidence=0.85,
        needs=":=",
    ),
    Rule(
        "bearer-token",
        "SECRET",
        r"(?<![A-Za-z])bearer\s{1,4}(?P<value>[A-Za-z0-9+/=._~-]{16,4096})",
        triggers=("bearer",),
        validate=_value_plain,
        ignore_case=True,
        confidence=0.85,
        needs=_DIGITS + "+/=._~-",
    ),
    Rule(
        "basic-credentials",
        "PASSWORD",
        r"(?<![A-Za-z])basic\s{1,4}(?P<value>[A-Za-z0-9+/]{8,1024}={0,2})(?![A-Za-z0-9+/=])",
        triggers=("basic",),
        validate=_basic_ok,
        ignore_case=True,
        confidence=0.85,
    ),
    Rule(
        "password-assignment",
        "PASSWORD",
        _PW_NAMES + _SEP + r"(?P<value>[^\s\"'`,;&<>]{1,256})",
        triggers=("pass", "pwd", "pw", "kennwort", "contrase"),
        validate=_value_plain,
        ignore_case=True,
        confidence=0.8,
        needs="=:",
    ),
    Rule(
        "password-flag",
        "PASSWORD",
        r"(?<![A-Za-z0-9-])--?(?:password|passwd|pass|pwd|token|secret|api-key|apikey|auth-token)"
        r"(?:[ \t]{1,4}|=)[\"']?(?P<value>[^\s\"'`;&|<>]{1,256})",
        triggers=("-pass", "-pwd", "-token", "-secret", "-api-key", "-apikey", "-auth-token"),
        validate=_value_plain,
        ignore_case=True,
        confidence=0.8,
        needs="-",
    ),
    Rule(
        "password-flag-quoted",
        "PASSWORD",
        # mysql -p'secret' / -p"secret": the value glued to -p, in quotes.
        r"(?<![A-Za-z0-9-])-p(?P<q>['\"])(?P<value>[^'\"\s]{1,256})(?P=q)",
        triggers=("-p'", '-p"'),
        validate=_value_plain,
        confidence=0.8,
        needs="-",
    ),
    Rule(
        "credential-prose",
        "SECRET",
        # "here's the key for the staging box: <random>", setdefault("X_API_KEY", "<random>"):
        # a credential word, a few words then ":" or "=", or a double-quoted name and a comma,
        # then the value; random values only.
        r"[kstac](?<![A-Za-z][kstac])(?:(?<=k)ey|(?<=t)oken|(?<=s)ecret|(?<=a)pi[_ -]?key"
        r"|(?<=c)redential)s?"
        r"(?:\",[ \t]{0,3}|(?:[\s,]{1,3}[A-Za-z'.]{1,20}){0,6}?\s{0,3}[:=])[ \t]{0,3}[\"'`]?"
        r"(?P<value>[A-Za-z0-9+/=_.~-]{16,512})",
        triggers=("key", "token", "secret", "credential"),
        validate=_value_random,
        ignore_case=True,
        confidence=0.65,
        needs=':="',
        starts=("key", "token", "secret", "api", "credential"),
    ),
    Rule(
        "password-said",
        "PASSWORD",
        # Prose: "the wifi password is Tr0ub4dor&3". Only values mixing letters with
        # digits or symbols, so "password is incorrect" stays.
        r"p(?:assword|asswort|asscode|(?<![A-Za-z]p)(?:in|wd|w)(?=[ \t:=]))"
        # up to six words between ("the wifi password for the guest network is ...")
        r"(?:\s{1,3}[A-Za-z]{1,20}){0,6}?\s{0,3}(?:\sis|\swas|:|=|\sist|\ses)\s{1,3}"
        r"[\"']?(?P<value>[^\s\"']{4,128})",
        triggers=("pass", "pin ", "pin\t", "pin:", "pin=", "pw"),
        validate=_said_ok,
        ignore_case=True,
        confidence=0.6,
        needs=_DIGITS + _PUNCT,
        starts=("pass", "pin", "pw"),  # tried there only, not at every "p"
    ),
    Rule(
        "xml-credential",
        "SECRET",
        r"<(?:password|passwd|secret|token|apikey|api_key|accesskey|clientsecret)>"
        r"(?P<value>[^<\s]{1,256})</",
        triggers=(
            "password>",
            "passwd>",
            "secret>",
            "token>",
            "apikey>",
            "api_key>",
            "accesskey>",
            "clientsecret>",
        ),
        validate=_value_plain,
        ignore_case=True,
        confidence=0.8,
        needs="<",
    ),
    Rule(
        "credential-assignment",
        "SECRET",
        # A high-entropy value assigned to a credential-looking name; low-entropy values
        # ("insert_key_here", "not_long_enough") are left.
        _SECRET_NAMES + _NAME_TAIL + _SEP + r"(?P<value>[A-Za-z0-9+/=_.~-]{8,512})",
        triggers=("secret", "token", "key", "auth", "credential", "signature", "sig"),
        validate=_value_random,
        ignore_case=True,
        confidence=0.7,
        needs="=:",
        starts=(
            *("secret", "sig", "sharedaccesskey", "token", "api", "ac", "auth", "credential"),
            *("private", "key"),
        ),
    ),
)


def _gitlab_ok(token: str) -> bool:
    """Lengths GitLab documents for its fixed-size token kinds."""
    if token.startswith("GR1348941"):
        return token_ok(token, 0, len(token))
    prefix, _, body = token.partition("-")
    body = body.split(".", 1)[0]
    fixed = {"glimt": 25, "glptt": 40, "gloas": 64}
    if prefix in fixed:
        return len(body) == fixed[prefix]
    if prefix == "glagent" and len(body) < 50:
        return False
    return token_ok(token, 0, len(token))


def _artifactory_ok(token: str) -> bool:
    if token.startswith("cmVmdGtu"):
        return True
    # Not an upper-case word or an identifier such as APP_CONFIG: at least one lower-case
    # letter or digit after the prefix.
    return any(c.islower() or c.isdigit() for c in token[3:])
