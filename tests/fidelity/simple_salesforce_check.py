"""Fidelity checks: simple-salesforce 1.12.x against the salesforce-sim binary."""

import os
import re
import sys
import time
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
)

VERSION = "62.0"
ID_18 = re.compile(r"^[a-zA-Z0-9]{15}[A-Z0-5]{3}$")
SF_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
TAG = f"Fpy{int(time.time() * 1000):x}"

TALLY = {"passed": 0, "failed": 0}


class CheckFailed(Exception):
    pass


def required_env(name):
    value = os.environ.get(name)
    if not value:
        print(f"FAIL setup: environment variable {name} is not set")
        print("0 passed, 1 failed")
        sys.exit(1)
    return value


BASE = required_env("SIM_URL")
EXPIRY_BASE = required_env("EXPIRY_SIM_URL")
JWT_KEY_FILE = required_env("JWT_PRIVATE_KEY")
USERNAME = os.environ.get("SIM_USERNAME", "integration@tandem.test")
PASSWORD = os.environ.get("SIM_PASSWORD", "tandem")
CLIENT_ID = os.environ.get("SIM_CLIENT_ID", "tandem-sim")
CLIENT_SECRET = os.environ.get("SIM_CLIENT_SECRET", "tandem-sim-secret")


class ToSimulator(requests.adapters.HTTPAdapter):
    """Sends simple-salesforce's hard-coded https:// URLs to the plain-http simulator."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.aliases = ("https://login.salesforce.com", "https://" + urlsplit(base).netloc)

    def send(self, request, **kwargs):
        for alias in self.aliases:
            if request.url.startswith(alias):
                request.url = self.base + request.url[len(alias):]
                break
        return super().send(request, **kwargs)


def simulator_session(base):
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", ToSimulator(base))
    return session


def check(name, body):
    try:
        body()
    except Exception as err:  # noqa: BLE001
        TALLY["failed"] += 1
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        print(f"FAIL {name}: {reason}", flush=True)
    else:
        TALLY["passed"] += 1
        print(f"ok   {name}", flush=True)


def ensure(condition, message):
    if not condition:
        raise CheckFailed(message)


def equal(actual, expected, what):
    ensure(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def is_id(value, prefix, what):
    ensure(isinstance(value, str) and ID_18.match(value), f"{what}: {value!r} is not an 18-char id")
    ensure(value.startswith(prefix), f"{what}: {value} does not start with {prefix}")


def raises(call, exception, what):
    try:
        call()
    except exception as err:
        return err
    raise CheckFailed(f"{what}: expected {exception.__name__}, the call succeeded")


def error_code(err):
    content = err.content
    return content[0].get("errorCode") if isinstance(content, list) and content else content


def password_login(base=BASE, password=PASSWORD):
    return Salesforce(
        username=USERNAME,
        password=password,
        consumer_key=CLIENT_ID,
        consumer_secret=CLIENT_SECRET,
        session=simulator_session(base),
        version=VERSION,
    )


def jwt_login(**key):
    return Salesforce(
        username=USERNAME,
        consumer_key=CLIENT_ID,
        session=simulator_session(BASE),
        version=VERSION,
        **key,
    )


def count(sf, soql, include_deleted=False):
    return sf.query(soql, include_deleted=include_deleted)["totalSize"]


def check_session(sf, auth_type):
    equal(sf.auth_type, auth_type, "auth_type")
    equal(sf.sf_instance, urlsplit(BASE).netloc, "sf_instance")
    ensure(re.match(r"^00D[a-zA-Z0-9]{12}!", sf.session_id), f"session id {sf.session_id!r}")
    equal(count(sf, f"SELECT COUNT() FROM User WHERE Username = '{USERNAME}'"), 1, "user count")


def identity(sf):
    resources = sf.restful("")
    url = resources["identity"]
    response = sf.session.get(url, params={"format": "json", "oauth_token": sf.session_id})
    equal(response.status_code, 200, "identity status")
    return response.json()


def sf_datetime(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def foreign_private_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def crud(sf, sobject_name, prefix, fields, changes):
    sobject = getattr(sf, sobject_name)
    created = sobject.create(fields)
    equal(created["success"], True, "create success")
    equal(list(created["errors"]), [], "create errors")
    is_id(created["id"], prefix, "created id")
    record_id = created["id"]
    fetched = sobject.get(record_id)
    equal(fetched["attributes"]["type"], sobject_name, "attributes.type")
    equal(fetched["Id"], record_id, "retrieved Id")
    for field, value in fields.items():
        equal(fetched[field], value, f"retrieved {field}")
    ensure(SF_DATETIME.match(fetched["CreatedDate"]), f"CreatedDate {fetched['CreatedDate']!r}")
    equal(sobject.update(record_id, changes), 204, "update status")
    refetched = sobject.get(record_id)
    for field, value in changes.items():
        equal(refetched[field], value, f"updated {field}")
    equal(sobject.delete(record_id), 204, "delete status")
    err = raises(lambda: sobject.get(record_id), SalesforceError, "get after delete")
    equal(err.status, 404, "get after delete status")
    ensure(error_code(err) in ("NOT_FOUND", "ENTITY_IS_DELETED"), f"get after delete code {error_code(err)!r}")


def upsert_twice(sf):
    key = f"{TAG}-HD-1"
    path = f"Helpdesk_Id__c/{key}"
    first = sf.Contact.upsert(path, {"LastName": f"{TAG}up1"}, raw_response=True)
    equal(first.status_code, 201, "first upsert status")
    body = first.json()
    equal((body["success"], body["created"]), (True, True), "first upsert success/created")
    is_id(body["id"], "003", "first upsert id")
    second = sf.Contact.upsert(path, {"LastName": f"{TAG}up2"}, raw_response=True)
    equal(second.status_code, 200, "second upsert status")
    equal(second.json(), {"id": body["id"], "success": True, "errors": [], "created": False}, "second upsert body")
    equal(sf.Contact.upsert(path, {"Title": "Again"}), 200, "third upsert status")
    stored = sf.Contact.get_by_custom_id("Helpdesk_Id__c", key)
    equal((stored["Id"], stored["LastName"], stored["Title"]), (body["id"], f"{TAG}up2", "Again"), "stored values")


def collection_create(sf, all_or_none, suffix):
    names = [f"{TAG}{suffix}a", None, f"{TAG}{suffix}c"]
    records = [
        {"attributes": {"type": "Contact"}, "LastName": name} if name
        else {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"}
        for name in names
    ]
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": all_or_none, "records": records},
    )
    equal(len(results), 3, "result count")
    stored = count(sf, f"SELECT COUNT() FROM Contact WHERE LastName LIKE '{TAG}{suffix}%'")
    return results, stored


def status_code(result):
    return result["errors"][0]["statusCode"] if result["errors"] else None


def all_or_none_rolls_back(sf):
    results, stored = collection_create(sf, True, "aon")
    equal([r["success"] for r in results], [False, False, False], "success flags")
    equal([r.get("id") for r in results], [None, None, None], "ids")
    equal(
        [status_code(r) for r in results],
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING", "ALL_OR_NONE_OPERATION_ROLLED_BACK"],
        "status codes",
    )
    equal(list(results[1]["errors"][0]["fields"]), ["LastName"], "error fields")
    equal(stored, 0, "records committed")


def partial_success(sf):
    results, stored = collection_create(sf, False, "part")
    equal([r["success"] for r in results], [True, False, True], "success flags")
    is_id(results[0]["id"], "003", "first id")
    is_id(results[2]["id"], "003", "third id")
    equal(status_code(results[1]), "REQUIRED_FIELD_MISSING", "failed record status code")
    equal(stored, 2, "records committed")


def composite_call(sf):
    base = f"/services/data/v{sf.sf_version}"
    soql = quote(f"SELECT LastName FROM Contact WHERE LastName = '{TAG}cmp'")
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": False,
            "compositeRequest": [
                {"method": "POST", "url": f"{base}/sobjects/Account", "referenceId": "acct", "body": {"Name": f"{TAG}cmp"}},
                {"method": "POST", "url": f"{base}/sobjects/Contact", "referenceId": "ada",
                 "body": {"LastName": f"{TAG}cmp", "AccountId": "@{acct.id}"}},
                {"method": "GET", "url": f"{base}/query?q={soql}", "referenceId": "found"},
            ],
        },
    )
    acct, ada, found = answer["compositeResponse"]
    equal([acct["httpStatusCode"], ada["httpStatusCode"], found["httpStatusCode"]], [201, 201, 200], "statuses")
    is_id(acct["body"]["id"], "001", "account id")
    equal(sf.Contact.get(ada["body"]["id"])["AccountId"], acct["body"]["id"], "the reference was resolved")
    equal([r["LastName"] for r in found["body"]["records"]], [f"{TAG}cmp"], "the query sees the earlier create")


def contact_total(sf):
    expected = count(sf, "SELECT COUNT() FROM Contact")
    ensure(expected > 2000, f"only {expected} contacts; the simulator should have been seeded with 2,500")
    return expected


def page_through_query_more(sf):
    expected = contact_total(sf)
    page = sf.query("SELECT Id FROM Contact")
    equal((page["totalSize"], page["done"], len(page["records"])), (expected, False, 2000), "first page")
    ensure(
        re.match(rf"^/services/data/v{re.escape(VERSION)}/query/[^/]+-2000$", page["nextRecordsUrl"]),
        f"nextRecordsUrl {page['nextRecordsUrl']!r}",
    )
    ids = [r["Id"] for r in page["records"]]
    pages = 1
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        ids.extend(r["Id"] for r in page["records"])
        pages += 1
    ensure(pages >= 2, f"fetched {pages} page(s)")
    equal(len(ids), expected, "records fetched")
    equal(len(set(ids)), expected, "distinct ids")


def query_all_iterates(sf):
    expected = contact_total(sf)
    result = sf.query_all("SELECT Id FROM Contact")
    equal((result["totalSize"], result["done"], len(result["records"])), (expected, True, expected), "query_all")
    equal(sum(1 for _ in sf.query_all_iter("SELECT Id FROM Contact")), expected, "query_all_iter records")


def query_all_after_delete(sf):
    record_id = sf.Contact.create({"LastName": f"{TAG}gone"})["id"]
    sf.Contact.delete(record_id)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{record_id}'"
    equal(count(sf, soql), 0, "query after delete")
    rows = sf.query_all(soql, include_deleted=True)["records"]
    equal([(r["Id"], r["IsDeleted"]) for r in rows], [(record_id, True)], "queryAll records")


def replication_windows(sf):
    kept = sf.Contact.create({"LastName": f"{TAG}kept"})["id"]
    sf.Contact.update(kept, {"Title": "Changed"})
    gone = sf.Contact.create({"LastName": f"{TAG}win"})["id"]
    sf.Contact.delete(gone)
    stamp = sf_datetime(sf.Contact.get(kept)["SystemModstamp"])
    start, end = stamp - timedelta(minutes=5), stamp + timedelta(minutes=2)
    updated = sf.Contact.updated(start, end)
    ensure(kept in updated["ids"], f"updated ids lack {kept}")
    ensure(gone not in updated["ids"], "updated ids include a deleted record")
    ensure(SF_DATETIME.match(updated["latestDateCovered"]), f"latestDateCovered {updated['latestDateCovered']!r}")
    deleted = sf.Contact.deleted(start, end)
    entries = {r["id"]: r["deletedDate"] for r in deleted["deletedRecords"]}
    ensure(gone in entries, f"deletedRecords lack {gone}")
    ensure(kept not in entries, "deletedRecords include a live record")
    ensure(SF_DATETIME.match(entries[gone]), f"deletedDate {entries[gone]!r}")
    ensure(sf_datetime(deleted["earliestDateAvailable"]) <= start, "earliestDateAvailable after start")


def describe_contact(sf):
    describe = sf.Contact.describe()
    equal((describe["name"], describe["keyPrefix"]), ("Contact", "003"), "name/keyPrefix")
    fields = {f["name"]: f for f in describe["fields"]}
    last = fields.get("LastName", {})
    equal(
        (last.get("type"), last.get("nillable"), last.get("createable"), last.get("length")),
        ("string", False, True, 80),
        "LastName type/nillable/createable/length",
    )
    ext = fields.get("Helpdesk_Id__c", {})
    equal((ext.get("externalId"), ext.get("custom")), (True, True), "Helpdesk_Id__c externalId/custom")
    names = {s["name"]: s["keyPrefix"] for s in sf.describe()["sobjects"]}
    equal(names.get("Account"), "001", "global describe Account keyPrefix")


def limits(sf):
    daily = sf.limits()["DailyApiRequests"]
    ensure(isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int), f"DailyApiRequests {daily!r}")
    ensure(daily["Remaining"] < daily["Max"], "Remaining does not reflect the calls made")
    usage = sf.api_usage["api-usage"]
    equal(usage.total, daily["Max"], "Sforce-Limit-Info total")
    ensure(usage.used >= daily["Max"] - daily["Remaining"], f"Sforce-Limit-Info used {usage.used}")


def versions_list():
    response = requests.get(f"{BASE}/services/data", timeout=10)
    equal(response.status_code, 200, "status")
    ensure(re.match(r"^application/json(;|$)", response.headers.get("content-type", "")), "content type")
    ensure("sforce-limit-info" not in response.headers, "the versions list must not count against limits")
    versions = {v["version"]: v for v in response.json()}
    equal(versions.get(VERSION, {}).get("url"), f"/services/data/v{VERSION}", f"{VERSION} url")
    equal(versions.get("59.0", {}).get("label"), "Winter '24", "59.0 label")
    ensure(all(re.match(r"^(Spring|Summer|Winter) '\d\d$", v["label"]) for v in versions.values()), "labels")


def expired_session_relogin():
    sf = password_login(EXPIRY_BASE)
    first = sf.session_id
    for i in range(8):
        equal(count(sf, f"SELECT COUNT() FROM User WHERE Username = '{USERNAME}'"), 1, f"query {i}")
    ensure(sf.session_id != first, "session id was not replaced after expiry")
    stale = requests.get(
        f"{EXPIRY_BASE}/services/data/v{VERSION}/limits",
        headers={"Authorization": f"Bearer {first}"},
        timeout=10,
    )
    equal(stale.status_code, 401, "stale token status")
    equal(stale.json(), [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], "401 body")


def main():
    state = {}

    def login():
        state["sf"] = password_login()
        check_session(state["sf"], "password")
        equal(identity(state["sf"])["username"], USERNAME, "identity username")

    def wrong_password():
        err = raises(lambda: password_login(password="wrong"), SalesforceAuthenticationFailed, "login")
        equal((err.code, err.auth_message), ("invalid_grant", "authentication failure"), "error")

    def jwt():
        check_session(jwt_login(privatekey_file=JWT_KEY_FILE), "jwt-bearer")

    def jwt_foreign_key():
        err = raises(lambda: jwt_login(privatekey=foreign_private_key()), SalesforceAuthenticationFailed, "login")
        equal(err.code, "invalid_grant", "error code")

    def direct_token():
        direct = Salesforce(
            instance_url=BASE,
            session_id=state["sf"].session_id,
            session=simulator_session(BASE),
            version=VERSION,
        )
        equal(direct.sf_instance, urlsplit(BASE).netloc, "sf_instance")
        equal(identity(direct)["username"], USERNAME, "identity username")
        ensure(count(direct, "SELECT COUNT() FROM Account") > 0, "no accounts visible")

    def sf():
        return state["sf"]

    check("versions list", versions_list)
    check("oauth password login", login)
    check("oauth password login rejects a wrong password", wrong_password)
    check("jwt bearer login", jwt)
    check("jwt bearer login rejects a foreign key", jwt_foreign_key)
    check("direct access token", direct_token)
    check("contact create/read/update/delete", lambda: crud(
        sf(), "Contact", "003",
        {"FirstName": "Ada", "LastName": f"{TAG}crud", "Email": "ada@example.com"},
        {"Title": "CTO", "Email": "ada@example.org"},
    ))
    check("account create/read/update/delete", lambda: crud(
        sf(), "Account", "001",
        {"Name": f"{TAG} Holdings", "BillingCity": "Lisbon"},
        {"Name": f"{TAG} Group", "Phone": "+351 555 0100"},
    ))
    check("upsert by external id (201, then 200)", lambda: upsert_twice(sf()))
    check("collection create allOrNone=true rolls back", lambda: all_or_none_rolls_back(sf()))
    check("collection create allOrNone=false commits partially", lambda: partial_success(sf()))
    check("query over 2,000 rows pages through query_more", lambda: page_through_query_more(sf()))
    check("query_all and query_all_iter read every page", lambda: query_all_iterates(sf()))
    check("composite: a create, a dependent create and a query in one call", lambda: composite_call(sf()))
    check("queryAll after a delete shows IsDeleted", lambda: query_all_after_delete(sf()))
    check("updated and deleted windows", lambda: replication_windows(sf()))
    check("describe Contact", lambda: describe_contact(sf()))
    check("limits", lambda: limits(sf()))
    check("expired session is re-established by re-login", expired_session_relogin)

    print(f"{TALLY['passed']} passed, {TALLY['failed']} failed")
    return 0 if TALLY["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
