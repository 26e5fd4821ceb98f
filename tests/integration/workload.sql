-- workload.sql: an allocation-heavy, fully deterministic SQLite workload for
-- test_sqlite3.py, run as `sqlite3 :memory: < workload.sql` with and without the
-- preload; the two outputs must be byte-identical. Nothing here may depend on time,
-- random() or addresses. Debian's sqlite3 is built with SYSTEM_MALLOC and
-- OMIT_LOOKASIDE, so every statement below allocates straight from malloc.
.bail on
.headers off
.mode list
.separator |
PRAGMA cache_size = -256;   -- a small page cache: more page churn (malloc/free)

-- A deterministic pseudo-random sequence (an LCG) from a recursive CTE.
CREATE TABLE customers (
  id      INTEGER PRIMARY KEY,
  name    TEXT NOT NULL,
  city    TEXT NOT NULL,
  credit  INTEGER NOT NULL
);
INSERT INTO customers (id, name, city, credit)
WITH RECURSIVE seq(i, r) AS (
  SELECT 1, 12345
  UNION ALL
  SELECT i + 1, (r * 1103515245 + 12345) % 2147483648 FROM seq WHERE i < 5000
)
SELECT i,
       'customer-' || printf('%05d', i) || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + r % 26, 1 + r % 7),
       CASE r % 8 WHEN 0 THEN 'Lisbon' WHEN 1 THEN 'Oslo' WHEN 2 THEN 'Nairobi'
                  WHEN 3 THEN 'Quito' WHEN 4 THEN 'Hanoi' WHEN 5 THEN 'Perth'
                  WHEN 6 THEN 'Tunis' ELSE 'Ghent' END,
       r % 100000
FROM seq;

CREATE TABLE orders (
  id          INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  amount      INTEGER NOT NULL,
  note        TEXT
);
INSERT INTO orders (id, customer_id, amount, note)
WITH RECURSIVE seq(i, r) AS (
  SELECT 1, 777
  UNION ALL
  SELECT i + 1, (r * 1103515245 + 12345) % 2147483648 FROM seq WHERE i < 30000
)
SELECT i, 1 + r % 5000, (r / 7) % 10000,
       CASE WHEN r % 5 = 0 THEN NULL ELSE hex(zeroblob(1 + r % 40)) || '/' || (r % 997) END
FROM seq;

SELECT 'rows', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders);

-- Indexes (sorter + b-tree building), then queries that use them.
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_amount ON orders(amount DESC, id);
CREATE INDEX customers_city ON customers(city, credit);
SELECT 'top-amounts', group_concat(id || ':' || amount, ',')
FROM (SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 12);

-- Joins and GROUP BY.
SELECT 'city', c.city, count(*), sum(o.amount), min(o.amount), max(o.amount),
       printf('%.4f', avg(o.amount))
FROM orders o JOIN customers c ON c.id = o.customer_id
GROUP BY c.city ORDER BY c.city;

SELECT 'best', c.id, c.name, t.total
FROM customers c
JOIN (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id) t
  ON t.customer_id = c.id
ORDER BY t.total DESC, c.id LIMIT 10;

SELECT 'no-orders', count(*) FROM customers c
WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);

-- Window functions.
SELECT 'rank', city, name, credit, rnk FROM (
  SELECT city, name, credit, rank() OVER (PARTITION BY city ORDER BY credit DESC, id) AS rnk
  FROM customers)
WHERE rnk <= 2 ORDER BY city, rnk;

SELECT 'running', id, amount, sum(amount) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)
FROM orders WHERE id % 2500 = 0 ORDER BY id;

-- A transaction with a savepoint rolled back and one released.
BEGIN;
UPDATE customers SET credit = credit + 1 WHERE city = 'Oslo';
SAVEPOINT sp1;
DELETE FROM orders WHERE amount < 5000;
SELECT 'in-savepoint', count(*) FROM orders;
ROLLBACK TO sp1;
RELEASE sp1;
SAVEPOINT sp2;
UPDATE orders SET note = upper(coalesce(note, 'none')) WHERE id % 3 = 0;
RELEASE sp2;
COMMIT;
SELECT 'after-tx', count(*), sum(amount), sum(length(note)) FROM orders;
SELECT 'oslo-credit', sum(credit) FROM customers WHERE city = 'Oslo';

BEGIN;
DELETE FROM orders;
SELECT 'deleted', count(*) FROM orders;
ROLLBACK;
SELECT 'restored', count(*) FROM orders;

-- Text functions over many rows; big strings built and thrown away.
SELECT 'text', count(*), sum(length(replace(upper(name), 'CUSTOMER', 'c'))),
       sum(instr(name, 'x')), max(length(trim(name, 'cus'))), min(lower(substr(name, 10)))
FROM customers;
SELECT 'concat-len', length(group_concat(name, ';')), length(group_concat(note, ''))
FROM (SELECT c.name, o.note FROM customers c JOIN orders o ON o.customer_id = c.id);
SELECT 'big-string', length(s), substr(s, 100000, 20), hex(sha3(s, 256))
FROM (SELECT group_concat(printf('%08x', id * 2654435761 % 4294967296), '') AS s FROM orders);
SELECT 'like', count(*) FROM customers WHERE name LIKE '%-abc%' OR name GLOB '*z';
SELECT 'blob', length(zeroblob(5000000)), hex(substr(x'00' || x'cafe' || zeroblob(3), 1, 5)), length(zeroblob(3) || x'cafe');

-- JSON: build documents, aggregate them, take them apart again.
CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT);
INSERT INTO docs (id, doc)
SELECT c.id,
       json_object('name', c.name, 'city', c.city, 'credit', c.credit,
                   'orders', (SELECT json_group_array(json_object('id', o.id, 'amount', o.amount))
                              FROM orders o WHERE o.customer_id = c.id))
FROM customers c;
SELECT 'json-len', sum(length(doc)), sum(json_array_length(doc, '$.orders')) FROM docs;
SELECT 'json-extract', json_extract(doc, '$.name'), json_extract(doc, '$.orders[0].amount')
FROM docs WHERE id IN (1, 2500, 5000) ORDER BY id;
SELECT 'json-each', count(*), sum(json_extract(value, '$.amount'))
FROM docs, json_each(docs.doc, '$.orders');
SELECT 'json-group', city, json_group_object(name, credit) IS NOT NULL, length(json_group_array(credit))
FROM (SELECT * FROM customers ORDER BY id) GROUP BY city ORDER BY city;
SELECT 'json-valid', sum(json_valid(doc)), hex(sha3_query('SELECT doc FROM docs ORDER BY id'))
FROM docs;

-- Full-text search and an R*Tree.
CREATE VIRTUAL TABLE notes USING fts5(body);
INSERT INTO notes (rowid, body)
SELECT id, name || ' lives in ' || city || ' and has ' || credit || ' credits' FROM customers;
SELECT 'fts', count(*) FROM notes WHERE notes MATCH 'lives AND (Oslo OR Quito)';
SELECT 'fts-top', rowid FROM notes WHERE notes MATCH 'Hanoi' ORDER BY rowid LIMIT 5;
CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, y0, y1);
INSERT INTO boxes SELECT id, amount % 1000, amount % 1000 + 10, id % 1000, id % 1000 + 10 FROM orders;
SELECT 'rtree', count(*) FROM boxes WHERE x0 >= 100 AND x1 <= 300 AND y0 >= 200 AND y1 <= 400;

-- A big temporary sort with no index, math functions, and a final checksum.
SELECT 'sorted', hex(sha3_query('SELECT note, amount FROM orders ORDER BY note, amount DESC, id'));
SELECT 'math', printf('%.6f', sum(sqrt(amount))), printf('%.6f', sum(ln(1 + credit)))
FROM orders JOIN customers ON customers.id = orders.customer_id;
DROP INDEX orders_amount;
DROP TABLE docs;
VACUUM;
SELECT 'integrity', * FROM pragma_integrity_check;
SELECT 'checksum', hex(sha3_query('SELECT * FROM customers ORDER BY id; SELECT * FROM orders ORDER BY id'));
SELECT 'done';
