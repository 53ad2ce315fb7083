--
-- flakeguard.normalize_message and flakeguard.message_signature: failure-message signatures
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;

SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, pg_get_function_result(p.oid) AS result
FROM pg_proc p WHERE p.pronamespace = 'flakeguard'::regnamespace
  AND p.proname IN ('normalize_message', 'message_signature') ORDER BY 1;

-- the masking rules, one example each
SELECT m AS message, flakeguard.normalize_message(m) AS normalized
FROM (VALUES
  ('at 2024-01-02T03:04:05.123Z boom'),
  ('at 2024-01-02 03:04:05+01:00'),
  ('on 2024-01-02, at 12:34:56.789'),
  ('session 123e4567-e89b-12d3-a456-426614174000 expired'),
  ('object 0x7ffd1234 freed by commit 3f2a9c1d8e7b'),
  ('File /home/u/src/foo.py:45 failed'),
  ('at Foo.bar(src\Foo.java:12:7)'),
  ('foo_test.go:45: expected 3 but was 4'),
  ('connect localhost:8080, 127.0.0.1:34567, db.example.com:5432'),
  ('GET http://localhost:8080/api/v1/items/17'),
  ('timeout after 5000ms'),
  ('x = -5, a-5, 10-20, pi 3.14, eps 1.5e-3'),
  ('test2 utf8 x86_64 sha256 test_123'),
  ('café 5€ Ωmega42')
) AS t(m);
-- whitespace and control characters collapse to one space, trimmed
SELECT flakeguard.normalize_message(E'  line one\r\n\tline two\x01\x7f  ') AS whitespace;

-- frozen: the same values as tests/unit/test_message_signature.cpp (stored signatures never change)
SELECT to_hex(flakeguard.message_signature('expected 3 but was 4')) AS expected_3_but_was_4,
       to_hex(flakeguard.message_signature('connection refused')) AS connection_refused,
       to_hex(flakeguard.message_signature('java.lang.NullPointerException')) AS npe,
       flakeguard.message_signature('expected 3 but was 4');
SELECT to_hex(flakeguard.message_signature(
  'AssertionError: expected 200 but got 503 at 2024-05-06T07:08:09Z (/home/ci/build/42/tests/test_api.py:118)'));

-- the signature is test_id() of the normalized text
SELECT flakeguard.message_signature(m) = flakeguard.test_id(flakeguard.normalize_message(m)) AS same
FROM (VALUES ('expected 3 but was 4'), ('connection refused'), (' x ')) AS t(m);

-- messages of one failure mode share a signature; different failure modes do not
SELECT mode, count(*) AS messages, count(DISTINCT flakeguard.message_signature(m)) AS signatures
FROM (VALUES
  ('timeout', 'timeout after 5000ms'),
  ('timeout', 'timeout after 300ms'),
  ('timeout', E'  timeout\tafter 12ms\n'),
  ('mismatch', 'expected 3 but was 4'),
  ('mismatch', 'expected 10 but was -2'),
  ('mismatch', 'expected 0.5 but was 1e9'),
  ('refused', 'could not connect to server at 127.0.0.1:34567: Connection refused'),
  ('refused', 'could not connect to server at 10.1.2.3:5432: Connection refused'),
  ('deadline', 'deadline passed at 2024-01-02T03:04:05Z (/home/alice/src/app/foo.py:45)'),
  ('deadline', 'deadline passed at 2025-12-31 23:59:59.999+02:00 (foo.py:1200:3)'),
  ('npe', 'java.lang.NullPointerException')
) AS t(mode, m)
GROUP BY mode ORDER BY mode;
SELECT count(DISTINCT flakeguard.message_signature(m)) AS signatures
FROM (VALUES ('expected 3 but was 4'), ('connection refused'), ('java.lang.NullPointerException'),
             ('timeout after 5000ms'), ('timeout after 5s'), ('test2 failed'), ('test3 failed')) AS t(m);

-- NULL in, NULL out; an empty or blank message has no signature (NULL) and normalizes to ''
SELECT flakeguard.normalize_message(NULL) IS NULL AS normalize_null,
       flakeguard.message_signature(NULL) IS NULL AS signature_null,
       flakeguard.normalize_message('') = '' AS normalize_empty,
       flakeguard.message_signature('') IS NULL AS signature_empty,
       flakeguard.normalize_message(E' \t\r\n ') = '' AS normalize_blank,
       flakeguard.message_signature(E' \t\r\n ') IS NULL AS signature_blank,
       flakeguard.message_signature('0') IS NOT NULL AS signature_zero;

-- normalizing twice changes nothing
SELECT flakeguard.normalize_message(n) = n AS idempotent
FROM (SELECT flakeguard.normalize_message(
  'AssertionError: expected 200 but got 503 at 2024-05-06T07:08:09Z (/home/ci/build/42/tests/test_api.py:118)') AS n) AS t;

-- huge messages: only the first 4096 bytes are read (never splitting a character), at most 4096 are written
SELECT length(flakeguard.normalize_message(repeat('1 ', 2500000))) AS lone_digits,
       flakeguard.normalize_message(repeat('x', 5000000)) = repeat('x', 4096) AS long_word,
       flakeguard.normalize_message(repeat('é', 3000000)) = repeat('é', 2048) AS two_byte_chars,
       flakeguard.normalize_message(repeat('a', 4095) || repeat('é', 1000)) = repeat('a', 4095) AS cut_before_char,
       flakeguard.message_signature(repeat('x', 5000000)) = flakeguard.message_signature(repeat('x', 4096)) AS same_signature;
-- the same from a stored (compressed, out-of-line) value
CREATE TEMP TABLE message_signature_big (m text);
INSERT INTO message_signature_big VALUES (repeat('timeout after 5000ms at 12:34:56; ', 150000));
SELECT length(m) AS stored_length,
       flakeguard.normalize_message(m) = flakeguard.normalize_message(left(m, 4097)) AS prefix_suffices,
       flakeguard.message_signature(m) = flakeguard.message_signature(left(m, 4097)) AS same_signature,
       length(flakeguard.normalize_message(m)) <= 4096 AS capped
FROM message_signature_big;
DROP TABLE message_signature_big;

-- wrong types
SELECT flakeguard.message_signature(42);
SELECT flakeguard.normalize_message();
