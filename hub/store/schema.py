"""Versioned schema migrations, written once for both dialects.

Each migration is a list of statements in which ``{blob}``, ``{id}`` and ``{bigint}`` are
replaced by the dialect's types. A store refuses to run on a schema older than the code
(``hub migrate`` brings it up to date; ``hub serve`` migrates on start).
"""

from __future__ import annotations

TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"blob": "BLOB", "id": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT"},
}

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "records, identity, consents, audit log, outbox, inbound de-duplication",
        [
            """CREATE TABLE records (
                kind TEXT NOT NULL, source TEXT NOT NULL, source_id TEXT NOT NULL,
                owner TEXT NOT NULL, version TEXT NOT NULL, payload {blob} NOT NULL,
                payload_hash TEXT NOT NULL, source_system TEXT NOT NULL,
                received_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
                sensitivity TEXT NOT NULL DEFAULT '', restricted INTEGER NOT NULL DEFAULT 0,
                client_source_id TEXT, person_id TEXT, client_source TEXT,
                raw_hash TEXT NOT NULL DEFAULT '', flags TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (kind, source, source_id))""",
            "CREATE INDEX records_person ON records (person_id)",
            "CREATE INDEX records_client ON records (client_source, client_source_id)",
            "CREATE INDEX records_received ON records (received_at)",
            """CREATE TABLE persons (
                id TEXT PRIMARY KEY, created_at TEXT NOT NULL,
                birth_date TEXT)""",
            """CREATE TABLE person_keys (
                match_key TEXT NOT NULL, person_id TEXT NOT NULL, kind TEXT NOT NULL,
                source TEXT NOT NULL, source_id TEXT NOT NULL,
                PRIMARY KEY (match_key, kind, source, source_id))""",
            "CREATE INDEX person_keys_record ON person_keys (kind, source, source_id)",
            "CREATE INDEX person_keys_person ON person_keys (person_id)",
            """CREATE TABLE identity_review (
                id {id}, record TEXT NOT NULL, candidates TEXT NOT NULL,
                reason TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)""",
            """CREATE TABLE consents (
                id TEXT PRIMARY KEY, client_system TEXT, client_value TEXT NOT NULL,
                body {blob} NOT NULL, updated_at TEXT NOT NULL)""",
            """CREATE TABLE audit_log (
                seq {bigint} PRIMARY KEY, person_id TEXT NOT NULL, body {blob} NOT NULL,
                prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
            "CREATE INDEX audit_person ON audit_log (person_id)",
            """CREATE TABLE audit_head (
                id INTEGER PRIMARY KEY, seq {bigint} NOT NULL, hash TEXT NOT NULL)""",
            """CREATE TABLE audit_checkpoints (
                seq {bigint} NOT NULL, head_hash TEXT NOT NULL, signature {blob} NOT NULL,
                key_id TEXT NOT NULL, created_at TEXT NOT NULL)""",
            """CREATE TABLE outbox (
                id {id}, feed TEXT NOT NULL, recipient TEXT NOT NULL, person_id TEXT NOT NULL,
                record_kind TEXT NOT NULL, record_source TEXT NOT NULL,
                record_source_id TEXT NOT NULL, record_version TEXT NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,
                created_at TEXT NOT NULL, last_error TEXT NOT NULL DEFAULT '',
                delivered_at TEXT, audit_seq {bigint}, payload {blob} NOT NULL,
                lease_owner TEXT, lease_until TEXT)""",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
            "CREATE INDEX outbox_order ON outbox (recipient, person_id, id)",
            """CREATE TABLE inbound_messages (
                sender TEXT NOT NULL, control_id TEXT NOT NULL, content_hash TEXT NOT NULL,
                response {blob} NOT NULL, received_at TEXT NOT NULL,
                PRIMARY KEY (sender, control_id))""",
            """CREATE TABLE dv_status (
                source TEXT NOT NULL, client_id TEXT NOT NULL, fleeing INTEGER NOT NULL,
                updated_at TEXT NOT NULL, PRIMARY KEY (source, client_id))""",
            """CREATE TABLE access_tokens (
                token_hash TEXT PRIMARY KEY, agency TEXT NOT NULL, role TEXT NOT NULL,
                client_id TEXT NOT NULL, expires_at TEXT NOT NULL)""",
            """CREATE TABLE used_assertions (
                jti TEXT PRIMARY KEY, client_id TEXT NOT NULL, expires_at TEXT NOT NULL)""",
            """CREATE TABLE partner_keys (
                key_id TEXT PRIMARY KEY, agency TEXT NOT NULL, role TEXT NOT NULL,
                salt {blob} NOT NULL, hash {blob} NOT NULL, created_at TEXT NOT NULL,
                revoked_at TEXT)""",
        ],
    ),
    (
        2,
        "index records in scheduled feed order; index open outbox entries only",
        [
            # Scheduled feeds read changes in (received_at, key) order.
            "DROP INDEX IF EXISTS records_received",
            "CREATE INDEX records_changes ON records (received_at, kind, source, source_id)",
            # Claims walk open entries in id order; delivered ones (most of the table until
            # retention prunes them) are in neither index.
            "DROP INDEX IF EXISTS outbox_order",
            "CREATE INDEX outbox_open ON outbox (id) "
            "WHERE status IN ('pending', 'retry', 'leased')",
            "CREATE INDEX outbox_open_order ON outbox (recipient, person_id, id) "
            "WHERE status IN ('pending', 'retry', 'leased')",
        ],
    ),
    (
        3,
        "feed cursors and run leases in the store, shared by every process",
        [
            # A scheduled feed's position: the newest record queued, as (received_at, kind,
            # source, source_id); the key columns are NULL when every record received at
            # `cursor` is queued (an imported file cursor). `lease_owner`/`lease_until`: the
            # process running the feed now (a lease that expires when that process dies).
            """CREATE TABLE feed_cursors (
                feed TEXT PRIMARY KEY, cursor TEXT NOT NULL, cursor_kind TEXT,
                cursor_source TEXT, cursor_source_id TEXT, updated_at TEXT NOT NULL,
                lease_owner TEXT, lease_until TEXT)""",
        ],
    ),
    (
        4,
        "consent generations: every process sees consents written by the others",
        [
            # Bumped in the transaction that writes consents; each consent row carries the
            # generation that wrote it, so a process reloads only what changed since.
            "CREATE TABLE consent_generation (id INTEGER PRIMARY KEY, value {bigint} NOT NULL)",
            "INSERT INTO consent_generation (id, value) VALUES (1, 1)",
            "ALTER TABLE consents ADD COLUMN generation {bigint} NOT NULL DEFAULT 1",
            "CREATE INDEX consents_generation ON consents (generation)",
        ],
    ),
    (
        5,
        "outbox heads: claims walk only the first open entry of each recipient and person",
        [
            # `head` marks the open entry that is (or may be) the earliest of its recipient
            # and person, the only one a claim may take. Claims walk the heads that are due,
            # in due order, so entries held back behind a failing one (a receiver that is
            # down) cost nothing until their turn. Set on enqueue when nothing of the person
            # is open, passed on to the next open entry when a head is settled.
            "ALTER TABLE outbox ADD COLUMN head INTEGER NOT NULL DEFAULT 0",
            "UPDATE outbox SET head=1 WHERE status IN ('pending', 'retry', 'leased') AND "
            "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.recipient=outbox.recipient AND "
            "p.person_id=outbox.person_id AND p.id < outbox.id AND "
            "p.status IN ('pending', 'retry', 'leased'))",
            "CREATE INDEX outbox_heads ON outbox (next_attempt_at, id) "
            "WHERE head=1 AND status IN ('pending', 'retry', 'leased')",
            "DROP INDEX IF EXISTS outbox_open",
        ],
    ),
    (
        6,
        "outbox leases without a status change: a claim rewrites the row and no index",
        [
            # A claimed entry keeps its status (pending or retry) and is known by its lease
            # (it is reported as `leased`). Changing `status` on every claim moved the entry
            # in each index over it (and in each partial index whose condition reads it),
            # at a random place of the (recipient, person) index: most of a claim's cost.
            "UPDATE outbox SET status='pending' WHERE status='leased'",
            "DROP INDEX IF EXISTS outbox_heads",
            "DROP INDEX IF EXISTS outbox_open_order",
            "CREATE INDEX outbox_heads ON outbox (next_attempt_at, id) "
            "WHERE head=1 AND status IN ('pending', 'retry')",
            "CREATE INDEX outbox_open_order ON outbox (recipient, person_id, id) "
            "WHERE status IN ('pending', 'retry')",
        ],
    ),
    (
        7,
        "replayed outbox entries: claimed only while nothing else of the person is in flight",
        [
            # A dead letter replayed is its person's head again, even while a later entry of
            # the person is being delivered. Claims check such an entry (and only such an
            # entry: the check reads every open entry of the person) for one in flight.
            "ALTER TABLE outbox ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0",
        ],
    ),
    (
        8,
        "SMART access tokens keep the scopes they were granted",
        [
            # Tokens issued before this (five-minute ones) keep what they were: unlimited.
            "ALTER TABLE access_tokens ADD COLUMN scope TEXT NOT NULL "
            "DEFAULT 'system/*.read system/*.write'",
        ],
    ),
    (
        9,
        "outbox heads by feed: a claim walks each feed's due heads on its own",
        [
            # Claims go feed by feed, in turn (each through this index), so a feed whose
            # partner is busy or hanging is passed by without walking its backlog, and a
            # feed with a large backlog cannot hold back the newer entries of the others.
            "DROP INDEX IF EXISTS outbox_heads",
            "CREATE INDEX outbox_feed_heads ON outbox (feed, next_attempt_at, id) "
            "WHERE head=1 AND status IN ('pending', 'retry')",
        ],
    ),
    (
        10,
        "records keep the time they were marked deleted",
        [
            # When this hub stored the record as deleted (UTC ISO text, as the other *_at
            # columns): a full refresh no longer carrying it (Transaction.mark_deleted) or a
            # version arriving deleted. NULL while the record is live; NULL too for records
            # deleted before this migration: deleted at an unknown time, which a delta export
            # does not invent (it leaves them out, as before). A delta export reads it to
            # tell its receiver about deletions made since its date. No index: exports read
            # the records of a kind in key order anyway, and imports should not pay for one.
            "ALTER TABLE records ADD COLUMN deleted_at TEXT",
        ],
    ),
    (
        11,
        "records a scheduled feed passed while their client was unknown",
        [
            # Noted by a feed's run, taken by a later one once the client has a person
            # (hub/feed_backlog.py); few: only records that came before their client.
            """CREATE TABLE feed_waiting (
                feed TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
                source_id TEXT NOT NULL, since TEXT NOT NULL,
                PRIMARY KEY (feed, kind, source, source_id))""",
        ],
    ),
    (
        12,
        "the store remembers the blind-index key it was built with",
        [
            # Facts about the store itself, by name. `index_key_check`: the check value of
            # the blind-index key its match keys and consent client values were made with
            # (hub/keys.py index_key_check; never the key). Recorded at the first open after
            # this migration; a hub whose key gives another check value refuses to open
            # (it would match no one); `hub keys rotate-index` changes it.
            """CREATE TABLE store_meta (
                name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        ],
    ),
    (
        13,
        "DV words: each record's word on a client fleeing DV, dated; the status is the latest",
        [
            # One row per record that said something about its client fleeing domestic
            # violence (a HUD HealthAndDV row's CurrentlyFleeing), with the date the word
            # describes (its InformationDate; '' when unknown). dv_status, which the gate
            # reads, is derived from them (Transaction.set_dv_status): the word with the
            # latest date, fleeing winning a tie, so neither the order rows are read in nor
            # a later correction of an older row can clear a newer "fleeing", and deleting a
            # row brings the word before it back. The word dv_status held for a client is
            # kept as a word of no record, failing closed: "fleeing" dated the day the hub
            # learnt it (a correction of an older row cannot clear it; a row dated later
            # can), "not fleeing" undated (any dated word outranks it).
            """CREATE TABLE dv_words (
                source TEXT NOT NULL, client_id TEXT NOT NULL, said_by TEXT NOT NULL,
                fleeing INTEGER NOT NULL, as_of TEXT NOT NULL, updated_at TEXT NOT NULL,
                PRIMARY KEY (source, client_id, said_by))""",
            "CREATE INDEX dv_words_said_by ON dv_words (source, said_by)",
            "INSERT INTO dv_words (source, client_id, said_by, fleeing, as_of, updated_at) "
            "SELECT source, client_id, '', fleeing, "
            "CASE WHEN fleeing = 1 THEN substr(updated_at, 1, 10) ELSE '' END, updated_at "
            "FROM dv_status",
        ],
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def statements(dialect: str, version: int) -> list[str]:
    """The statements of one migration, in the dialect's types."""
    types = TYPES[dialect]
    for number, _title, stmts in MIGRATIONS:
        if number == version:
            return [s.format(**types) for s in stmts]
    raise KeyError(version)
