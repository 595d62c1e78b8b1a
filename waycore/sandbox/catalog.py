"""The sandbox's institution catalog, its search rule, and the scenario table.

The catalog holds real-world banks (US, UK, Canada, EU) with plausible login portals, several
with more than one portal, plus six "Sandbox Scenario" institutions whose activation ends in a
chosen status. The same scenarios are reachable for portal-only connections through the hosts
under `.scenario.test`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Institution:
    institution_id: str
    name: str
    country: str
    portals: tuple[str, ...]  # canonical first

    @property
    def canonical_portal_url(self) -> str:
        return self.portals[0]

    def to_api(self) -> dict[str, Any]:
        return {
            "institutionId": self.institution_id,
            "name": self.name,
            "canonicalPortalUrl": self.portals[0],
            "additionalPortalUrls": list(self.portals[1:]),
            "country": self.country,
        }


@dataclass(frozen=True)
class Scenario:
    """How activation ends for a scenario connection."""

    key: str
    host: str
    institution_id: str
    name: str
    #: Status after activation ("active" for the slow scenario).
    result: str
    slow: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "reauthRequired",
        "reauth-required.scenario.test",
        "scenario_reauth_required",
        "Sandbox Scenario: Reauthentication Required",
        "reauthRequired",
    ),
    Scenario(
        "errored",
        "errored.scenario.test",
        "scenario_errored",
        "Sandbox Scenario: Activation Error",
        "errored",
    ),
    Scenario(
        "invalidConfig",
        "invalid-config.scenario.test",
        "scenario_invalid_config",
        "Sandbox Scenario: Invalid Configuration",
        "invalidConfig",
    ),
    Scenario(
        "paused",
        "paused.scenario.test",
        "scenario_paused",
        "Sandbox Scenario: Paused",
        "paused",
    ),
    Scenario(
        "revoked",
        "revoked.scenario.test",
        "scenario_revoked",
        "Sandbox Scenario: Revoked",
        "revoked",
    ),
    Scenario(
        "slow",
        "slow.scenario.test",
        "scenario_slow",
        "Sandbox Scenario: Slow Activation",
        "active",
        slow=True,
    ),
)


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def scenario_portal(scenario: Scenario) -> str:
    """The catalog portal of a scenario institution (not the portal-only scenario host)."""
    return f"https://{scenario.host.replace('.scenario.test', '.scenario-bank.test')}/login"


#: The invalid-configuration bank's second portal: a connection to it activates normally, so a
#: corrected connection for that bank can be tried.
CORRECTED_PORTAL = "https://invalid-config.scenario-bank.test/business/login"


def _scenario_portals(scenario: Scenario) -> tuple[str, ...]:
    extra = (CORRECTED_PORTAL,) if scenario.key == "invalidConfig" else ()
    return (scenario_portal(scenario), *extra)


_I = Institution
INSTITUTIONS: tuple[Institution, ...] = (
    # United States
    _I(
        "chase",
        "JPMorgan Chase",
        "US",
        (
            "https://secure.chase.com/web/auth/dashboard",
            "https://www.chase.com/business/banking",
            "https://access.jpmorgan.com/",
        ),
    ),
    _I(
        "bank_of_america",
        "Bank of America",
        "US",
        (
            "https://secure.bankofamerica.com/login/sign-in/signOnV2Screen.go",
            "https://cashpro.bankofamerica.com/",
        ),
    ),
    _I(
        "wells_fargo",
        "Wells Fargo",
        "US",
        (
            "https://connect.secure.wellsfargo.com/auth/login/present",
            "https://wellsoffice.wellsfargo.com/",
        ),
    ),
    _I(
        "citibank",
        "Citibank",
        "US",
        ("https://online.citi.com/US/login.do", "https://portal.citidirect.com/"),
    ),
    _I(
        "us_bank",
        "U.S. Bank",
        "US",
        ("https://onlinebanking.usbank.com/auth/login/", "https://singlepoint.usbank.com/"),
    ),
    _I(
        "pnc",
        "PNC Bank",
        "US",
        ("https://www.onlinebanking.pnc.com/alservice/", "https://pinacle.pnc.com/"),
    ),
    _I("truist", "Truist", "US", ("https://dias.bank.truist.com/ui/login",)),
    _I("capital_one", "Capital One", "US", ("https://verified.capitalone.com/auth/signin",)),
    _I("td_bank_us", "TD Bank", "US", ("https://onlinebanking.tdbank.com/",)),
    _I(
        "citizens_bank",
        "Citizens Bank",
        "US",
        (
            "https://www1.citizensbankonline.com/efs/servlet/efs/login.jsp",
            "https://accessoptima.citizensbank.com/",
        ),
    ),
    _I("fifth_third", "Fifth Third Bank", "US", ("https://onlinebanking.53.com/",)),
    _I("keybank", "KeyBank", "US", ("https://ibx.key.com/",)),
    _I("huntington", "Huntington Bank", "US", ("https://onlinebanking.huntington.com/",)),
    _I("m_and_t_bank", "M&T Bank", "US", ("https://onlinebanking.mtb.com/",)),
    _I("regions", "Regions Bank", "US", ("https://www.regions.com/login",)),
    _I("svb", "Silicon Valley Bank", "US", ("https://online.svb.com/",)),
    _I("mercury", "Mercury", "US", ("https://app.mercury.com/login",)),
    _I(
        "customers_bank",
        "Customers Bank",
        "US",
        ("https://online.customersbank.com/", "https://cbiz.customersbank.com/"),
    ),
    _I("apple_bank", "Apple Bank", "US", ("https://online.applebank.com/",)),
    _I(
        "first_national_bank_of_pennsylvania",
        "First National Bank of Pennsylvania",
        "US",
        ("https://online.fnb-online.com/", "https://business.fnb-online.com/"),
    ),
    _I("united_bank", "United Bank", "US", ("https://online.bankwithunited.com/",)),
    _I("frost_bank", "Frost Bank", "US", ("https://online.frostbank.com/",)),
    # Canada
    _I(
        "peoples_bank_of_canada",
        "Peoples Bank of Canada",
        "CA",
        ("https://online.peoplesbankofcanada.com/",),
    ),
    _I(
        "rbc",
        "RBC Royal Bank",
        "CA",
        (
            "https://secure.royalbank.com/statics/login-service-ui/index",
            "https://www.rbcexpressonline.com/",
        ),
    ),
    _I(
        "td_canada_trust",
        "TD Canada Trust",
        "CA",
        ("https://easyweb.td.com/", "https://businessbanking.td.com/"),
    ),
    _I("scotiabank", "Scotiabank", "CA", ("https://www.scotiaonline.scotiabank.com/",)),
    _I(
        "bmo",
        "BMO Bank of Montreal",
        "CA",
        ("https://www1.bmo.com/banking/digital/login", "https://www.commercial.bmo.com/"),
    ),
    _I(
        "cibc",
        "CIBC",
        "CA",
        ("https://www.cibconline.cibc.com/", "https://www.cibc.com/smartbusiness/"),
    ),
    _I("national_bank_of_canada", "National Bank of Canada", "CA", ("https://bvi.bnc.ca/",)),
    _I("desjardins", "Desjardins", "CA", ("https://accesd.desjardins.com/",)),
    # United Kingdom
    _I(
        "barclays",
        "Barclays",
        "GB",
        (
            "https://bank.barclays.co.uk/olb/authlogin/loginAppContainer.do",
            "https://ibportal.barclays.com/",
        ),
    ),
    _I(
        "hsbc_uk",
        "HSBC UK",
        "GB",
        (
            "https://www.hsbc.co.uk/security/",
            "https://www.business.hsbc.co.uk/",
            "https://www.hsbcnet.com/",
        ),
    ),
    _I(
        "lloyds",
        "Lloyds Bank",
        "GB",
        (
            "https://online.lloydsbank.co.uk/personal/logon/login.jsp",
            "https://online-business.lloydsbank.co.uk/",
        ),
    ),
    _I(
        "natwest",
        "NatWest",
        "GB",
        ("https://www.nwolb.com/", "https://www.bankline.natwest.com/"),
    ),
    _I(
        "santander_uk",
        "Santander UK",
        "GB",
        ("https://retail.santander.co.uk/", "https://business.santander.co.uk/"),
    ),
    _I("starling", "Starling Bank", "GB", ("https://business.starlingbank.com/",)),
    _I("tide", "Tide", "GB", ("https://web.tide.co/",)),
    _I("metro_bank", "Metro Bank", "GB", ("https://personal.metrobankonline.co.uk/",)),
    _I("coutts", "Coutts", "GB", ("https://secure.coutts.com/",)),
    # European Union
    _I(
        "deutsche_bank",
        "Deutsche Bank",
        "DE",
        ("https://meine.deutsche-bank.de/", "https://autobahn.db.com/"),
    ),
    _I("commerzbank", "Commerzbank", "DE", ("https://kunden.commerzbank.de/",)),
    _I(
        "bnp_paribas",
        "BNP Paribas",
        "FR",
        ("https://mabanque.bnpparibas/", "https://connexis.bnpparibas.com/"),
    ),
    _I(
        "societe_generale",
        "Société Générale",
        "FR",
        ("https://particuliers.sg.fr/", "https://entreprises.sg.fr/"),
    ),
    _I("ing", "ING", "NL", ("https://mijn.ing.nl/login/", "https://mijn.ing.nl/zakelijk/")),
    _I("abn_amro", "ABN AMRO", "NL", ("https://www.abnamro.nl/portalserver/mijn-abnamro/",)),
    _I("bunq", "bunq", "NL", ("https://web.bunq.com/",)),
    _I("banco_santander", "Banco Santander", "ES", ("https://www.bancosantander.es/empresas",)),
    _I("bbva", "BBVA", "ES", ("https://www.bbva.es/empresas.html",)),
    _I("unicredit", "UniCredit", "IT", ("https://www.unicredit.it/",)),
    _I("intesa_sanpaolo", "Intesa Sanpaolo", "IT", ("https://www.intesasanpaolo.com/",)),
    _I("kbc", "KBC", "BE", ("https://www.kbc.be/business/",)),
    _I(
        "aib",
        "AIB",
        "IE",
        ("https://onlinebanking.aib.ie/", "https://ibb.aib.ie/"),
    ),
    _I(
        "bank_of_ireland",
        "Bank of Ireland",
        "IE",
        ("https://www.365online.com/", "https://businessonline-boi.com/"),
    ),
    _I("revolut_business", "Revolut Business", "LT", ("https://business.revolut.com/signin",)),
    # Sandbox scenarios: their portals are on a domain of their own, so that the portal-only
    # scenario hosts (`*.scenario.test`) match no catalog entry in a search.
    *(_I(s.institution_id, s.name, "US", _scenario_portals(s)) for s in SCENARIOS),
)

BY_ID: dict[str, Institution] = {i.institution_id: i for i in INSTITUTIONS}
_SCENARIO_BY_HOST = {
    **{s.host: s for s in SCENARIOS},
    **{host_of(scenario_portal(s)): s for s in SCENARIOS},
}
_SCENARIO_BY_INSTITUTION = {s.institution_id: s for s in SCENARIOS}

#: Two-label public suffixes, enough for the catalog's countries.
_SUFFIXES = {"co.uk", "org.uk", "ac.uk", "com.au", "co.nz", "gc.ca"}


def registrable_domain(host: str) -> str:
    """`online.lloydsbank.co.uk` -> `lloydsbank.co.uk`; `secure.chase.com` -> `chase.com`."""
    labels = host.strip(".").split(".")
    take = 3 if ".".join(labels[-2:]) in _SUFFIXES else 2
    return ".".join(labels[-take:])


def scenario_for(institution_id: str | None, portal_url: str | None) -> Scenario | None:
    if portal_url == CORRECTED_PORTAL:
        return None
    if institution_id and institution_id in _SCENARIO_BY_INSTITUTION:
        return _SCENARIO_BY_INSTITUTION[institution_id]
    if portal_url:
        return _SCENARIO_BY_HOST.get(host_of(portal_url))
    return None


def _matches(inst: Institution, needle: str, needle_domain: str | None) -> bool:
    if needle in inst.name.lower() or needle in inst.institution_id:
        return True
    for portal in inst.portals:
        if needle in portal.lower():
            return True
        if needle_domain and registrable_domain(host_of(portal)) == needle_domain:
            return True
    return False


def search(query: str | None) -> list[Institution]:
    """Case-insensitive partial match on name, id, portal URL or portal domain, by name."""
    found = list(INSTITUTIONS)
    needle = (query or "").strip().lower()
    if needle:
        host = host_of(needle if "://" in needle else f"https://{needle}")
        domain = registrable_domain(host) if host and "." in host else None
        found = [i for i in found if _matches(i, needle, domain)]
    return sorted(found, key=lambda i: (i.name.lower(), i.institution_id))


def portal_matches(inst: Institution, portal_url: str) -> bool:
    """Whether `portal_url` is one of the institution's portals.

    Scheme and host compare case-insensitively and a trailing "/" is ignored; path and query
    must otherwise be identical.
    """

    def norm(url: str) -> tuple[str, str, str, str]:
        parts = urlsplit(url)
        return (
            parts.scheme.lower(),
            parts.netloc.lower(),
            parts.path.rstrip("/"),
            parts.query,
        )

    try:
        wanted = norm(portal_url)
        return any(norm(p) == wanted for p in inst.portals)
    except ValueError:
        return False
