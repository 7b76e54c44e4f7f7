"""Generate a PostgreSQL database of realistic data for the benchmark.

Realistic means text that compresses like real application data (about 2-4x
with ``zstd -1``), not pgbench's blank padding, which compresses 45x and hides
what compression costs. Every row is built server-side in SQL: words drawn
with a skewed (roughly Zipf-like) frequency from a generated vocabulary of
8,000 nonsense words, plus numbers, timestamps, hashes and ``jsonb``.
Foreign keys and secondary indexes are created at the end, as a restore would.

    .venv/bin/python bench/generate.py --size-mb 1000            # -> drc_bench
    .venv/bin/python bench/generate.py --size-mb 100 --dbname drc_bench_100

The database is tagged with a comment recording the requested size, so
``bench/run.py`` reuses it instead of generating it again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

VOCABULARY = 8_000
# Per batch; one batch is about 19 MB of table data before indexes.
CUSTOMERS = 2_000
ORDERS = 10_000
EVENTS = 30_000
PRODUCTS = 20_000
# Share of the final database size taken by table data (the rest: indexes),
# measured on this schema; used to decide when to stop loading.
HEAP_SHARE = 0.80
COMMENT_PREFIX = "drc-bench size_mb="


@dataclass(frozen=True)
class Server:
    host: str = os.environ.get("DRC_PG_HOST", "127.0.0.1")
    port: str = os.environ.get("DRC_PG_PORT", "5432")
    user: str = os.environ.get("DRC_PG_USER", "postgres")

    def connect(self, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, autocommit=True
        )

    def libpq_args(self) -> list[str]:
        return ["--host", self.host, "--port", self.port, "--username", self.user, "--no-password"]


SCHEMA = """
CREATE TABLE vocab (id integer NOT NULL, word text NOT NULL);
CREATE TABLE customers (
    id bigint NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    city text NOT NULL,
    country char(2) NOT NULL,
    created_at timestamptz NOT NULL,
    bio text,
    profile jsonb NOT NULL
);
CREATE TABLE products (
    id bigint NOT NULL,
    sku text NOT NULL,
    title text NOT NULL,
    description text NOT NULL,
    price numeric(10, 2) NOT NULL,
    stock integer NOT NULL,
    tags text[] NOT NULL
);
CREATE TABLE orders (
    id bigint NOT NULL,
    customer_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    status text NOT NULL,
    total numeric(12, 2) NOT NULL,
    currency char(3) NOT NULL,
    shipping_address text NOT NULL,
    note text
);
CREATE TABLE order_items (
    order_id bigint NOT NULL,
    line integer NOT NULL,
    product_id bigint NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL
);
CREATE TABLE events (
    id bigint NOT NULL,
    customer_id bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind text NOT NULL,
    session_id text NOT NULL,
    message text,
    payload jsonb NOT NULL
);

-- Random words, one array per key in [lo, hi]: a hash join against the
-- vocabulary (subscripting one big array per word would detoast it each time).
CREATE FUNCTION bench_words(lo bigint, hi bigint, minw integer, maxw integer)
RETURNS TABLE (k bigint, ws text[]) LANGUAGE sql VOLATILE AS $$
    SELECT p.k, array_agg(v.word)
    FROM (
        SELECT g AS k, 1 + floor(power(random(), 2) * %(vocab)s)::integer AS wid
        FROM generate_series(lo, hi) AS g,
             LATERAL generate_series(1, minw + floor(random() * (maxw - minw + 1) + 0 * g)::integer)
    ) AS p
    JOIN vocab AS v ON v.id = p.wid
    GROUP BY p.k
$$;
"""

VOCAB = """
INSERT INTO vocab
SELECT i, string_agg(
    substr('bcdfghjklmnprstvwzbdklmnrst', 1 + floor(random() * 27)::integer, 1)
    || substr('aeiouyaeioea', 1 + floor(random() * 12)::integer, 1)
    || CASE WHEN random() < 0.25 THEN substr('nrslt', 1 + floor(random() * 5)::integer, 1)
            ELSE '' END,
    '')
FROM generate_series(1, %(vocab)s) AS i,
     LATERAL generate_series(1, 1 + (i %% 3) + floor(random() * 2 + 0 * i)::integer)
GROUP BY i
"""

PRODUCTS_SQL = """
INSERT INTO products
SELECT w.k,
       upper(substr(md5(random()::text), 1, 10)),
       initcap(array_to_string(w.ws[1:4], ' ')),
       array_to_string(w.ws[5:], ' '),
       round((1 + random() * 500)::numeric, 2),
       floor(random() * 1000)::integer,
       w.ws[1:3]
FROM bench_words(1, %(products)s, 30, 150) AS w
"""

CUSTOMERS_SQL = """
INSERT INTO customers
SELECT w.k,
       initcap(w.ws[1]) || ' ' || initcap(w.ws[2]),
       w.ws[1] || '.' || w.ws[2] || w.k || '@' || w.ws[3]
           || (ARRAY['.com', '.net', '.org', '.io', '.de'])[1 + w.k %% 5],
       initcap(w.ws[4]),
       (ARRAY['US', 'DE', 'FR', 'GB', 'NL', 'ES', 'IT', 'PL', 'SE', 'JP'])
           [1 + floor(random() * 10)::integer],
       now() - random() * interval '1500 days',
       CASE WHEN random() < 0.8 THEN array_to_string(w.ws[8:], ' ') END,
       jsonb_build_object(
           'newsletter', random() < 0.3,
           'lang', (ARRAY['en', 'de', 'fr', 'es'])[1 + floor(random() * 4)::integer],
           'phone', '+' || (1000000000 + floor(random() * 8999999999))::bigint,
           'interests', to_jsonb(w.ws[5:7]),
           'api_key', md5(random()::text),
           'score', round((random() * 100)::numeric, 3))
FROM bench_words(%(lo)s, %(hi)s, 12, 60) AS w
"""

ORDERS_SQL = """
INSERT INTO orders
SELECT w.k,
       1 + floor(random() * %(customers)s)::bigint,
       now() - random() * interval '1500 days',
       (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'])
           [1 + floor(random() * 6)::integer],
       round((5 + random() * 2000)::numeric, 2),
       (ARRAY['EUR', 'USD', 'GBP'])[1 + floor(random() * 3)::integer],
       (1 + floor(random() * 999))::integer || ' ' || initcap(w.ws[1]) || ' Street, '
           || lpad(floor(random() * 99999)::integer::text, 5, '0') || ' ' || initcap(w.ws[2]),
       CASE WHEN random() < 0.4 THEN array_to_string(w.ws[3:], ' ') END
FROM bench_words(%(lo)s, %(hi)s, 3, 25) AS w
"""

ITEMS_SQL = """
INSERT INTO order_items
SELECT o, l,
       1 + floor(random() * %(products)s)::bigint,
       1 + floor(random() * 5)::integer,
       round((1 + random() * 500)::numeric, 2)
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS o,
     LATERAL generate_series(1, 1 + floor(random() * 5 + 0 * o)::integer) AS l
"""

EVENTS_SQL = """
INSERT INTO events
SELECT w.k,
       1 + floor(random() * %(customers)s)::bigint,
       now() - random() * interval '400 days',
       (ARRAY['page_view', 'search', 'add_to_cart', 'checkout', 'login', 'logout',
              'signup', 'review', 'wishlist', 'share', 'error', 'api_call'])
           [1 + floor(random() * 12)::integer],
       md5(random()::text),
       CASE WHEN random() < 0.5 THEN array_to_string(w.ws[8:], ' ') END,
       jsonb_build_object(
           'path', '/' || w.ws[1] || '/' || w.ws[2],
           'query', array_to_string(w.ws[3:5], ' '),
           'referrer', 'https://' || w.ws[6] || '.example/' || w.ws[7],
           'duration_ms', floor(random() * 5000)::integer,
           'ip', '10.' || floor(random() * 256)::integer || '.' || floor(random() * 256)::integer
                 || '.' || floor(random() * 256)::integer,
           'user_agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0',
                                'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15',
                                'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/129.0',
                                'curl/8.5.0'])[1 + floor(random() * 4)::integer],
           'ok', random() < 0.97)
FROM bench_words(%(lo)s, %(hi)s, 8, 40) AS w
"""

CONSTRAINTS = """
ALTER TABLE vocab ADD PRIMARY KEY (id);
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE products ADD PRIMARY KEY (id);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE order_items ADD PRIMARY KEY (order_id, line);
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX customers_email ON customers (email);
CREATE INDEX customers_created ON customers (created_at);
CREATE UNIQUE INDEX products_sku ON products (sku);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_created ON orders (created_at);
CREATE INDEX order_items_product ON order_items (product_id);
CREATE INDEX events_customer_time ON events (customer_id, occurred_at);
CREATE INDEX events_kind ON events (kind);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE order_items ADD FOREIGN KEY (product_id) REFERENCES products (id);
ALTER TABLE events ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
"""


def database_size(server: Server, dbname: str) -> int:
    with server.connect("postgres") as conn:
        row = conn.execute("SELECT pg_database_size(%s)", [dbname]).fetchone()
    assert row is not None
    return int(row[0])


def tagged_size(server: Server, dbname: str) -> int | None:
    """The size this tool was asked for when it made ``dbname``, or None."""
    with server.connect("postgres") as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [dbname],
        ).fetchone()
    if not row or not row[0] or not str(row[0]).startswith(COMMENT_PREFIX):
        return None
    return int(str(row[0])[len(COMMENT_PREFIX) :])


def generate(server: Server, dbname: str, size_mb: int, *, log: bool = True) -> int:
    """(Re)create ``dbname`` with about ``size_mb`` MB of data; return its size in bytes."""
    say = print if log else (lambda *_a, **_k: None)
    started = time.monotonic()
    with server.connect("postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    target = size_mb * 1024 * 1024
    with server.connect(dbname) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(SCHEMA.replace("%(vocab)s", str(VOCABULARY)))
        conn.execute(VOCAB, {"vocab": VOCABULARY})
        conn.execute(PRODUCTS_SQL, {"products": PRODUCTS})
        batch = 0
        while True:
            size = database_size(server, dbname)
            if size >= target * HEAP_SHARE:
                break
            params = {"customers": (batch + 1) * CUSTOMERS, "products": PRODUCTS}
            with conn.transaction():
                for statement, per in (
                    (CUSTOMERS_SQL, CUSTOMERS),
                    (ORDERS_SQL, ORDERS),
                    (ITEMS_SQL, ORDERS),
                    (EVENTS_SQL, EVENTS),
                ):
                    lo = batch * per + 1
                    conn.execute(statement, {**params, "lo": lo, "hi": lo + per - 1})
            batch += 1
            if batch % 10 == 0:
                say(f"  {batch} batches, {size / 2**20:.0f} MB, {time.monotonic() - started:.0f} s")
        say(f"  loaded {batch} batches; adding keys and indexes")
        conn.execute(CONSTRAINTS)
        conn.execute("DROP FUNCTION bench_words(bigint, bigint, integer, integer)")
        conn.execute("VACUUM (ANALYZE, FREEZE)")
        conn.execute("CHECKPOINT")
    with server.connect("postgres") as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(dbname), sql.Literal(f"{COMMENT_PREFIX}{size_mb}")
            )
        )
    size = database_size(server, dbname)
    say(f"  {dbname}: {size / 2**20:.0f} MB in {time.monotonic() - started:.0f} s")
    return size


def ensure(server: Server, dbname: str, size_mb: int, *, force: bool = False) -> int:
    """Reuse ``dbname`` if this tool made it at ``size_mb``; otherwise generate it."""
    if not force and tagged_size(server, dbname) == size_mb:
        return database_size(server, dbname)
    print(f"generating {dbname} ({size_mb} MB)")
    return generate(server, dbname, size_mb)


def compression_sample(server: Server, dbname: str, rows: int = 100_000) -> dict[str, float]:
    """``zstd -1`` ratio of the COPY text of the first ``rows`` rows of each table."""
    ratios: dict[str, float] = {}
    raw_total = packed_total = 0
    with server.connect(dbname) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_stat_user_tables ORDER BY relname"
            ).fetchall()
        ]
        for table in tables:
            query = sql.SQL("COPY (SELECT * FROM {} LIMIT {}) TO STDOUT").format(
                sql.Identifier(str(table)), sql.Literal(rows)
            )
            with conn.cursor() as cur, cur.copy(query) as copy:
                raw = b"".join(bytes(chunk) for chunk in copy)
            packed = subprocess.run(
                ["zstd", "-1", "-c"], input=raw, capture_output=True, check=True
            ).stdout
            ratios[str(table)] = len(raw) / max(len(packed), 1)
            raw_total += len(raw)
            packed_total += len(packed)
    ratios["all tables"] = raw_total / max(packed_total, 1)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dbname", default="drc_bench")
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--force", action="store_true", help="regenerate even if it exists")
    args = parser.parse_args(argv)
    server = Server()
    if args.dbname in ("postgres", "template0", "template1"):
        parser.error(f"refusing to replace {args.dbname}")
    size = ensure(server, args.dbname, args.size_mb, force=args.force)
    print(f"pg_database_size({args.dbname}) = {size / 2**20:.0f} MB")
    print("zstd -1 on a COPY sample (100k rows per table):")
    for table, ratio in compression_sample(server, args.dbname).items():
        print(f"  {table:12} {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
