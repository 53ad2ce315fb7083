--
-- flakeguard.parse_junit: character encodings
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/../fixtures/junit/'

-- bytea: the declaration names the encoding
SELECT name, message FROM flakeguard.parse_junit(convert_to(
    '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite><testcase name="café"><failure message="naïve"/></testcase></testsuite>',
    'LATIN1'));
SELECT name FROM flakeguard.parse_junit(
    '<?xml version="1.0" encoding="windows-1252"?><testsuite><testcase name="'::bytea || '\x80'::bytea || '"/></testsuite>'::bytea);
-- bytea: UTF-8 with and without a byte-order mark
SELECT name FROM flakeguard.parse_junit('\xefbbbf'::bytea || convert_to('<testsuite><testcase name="bom ✓"/></testsuite>', 'UTF8'));
-- bytea: UTF-16 LE with a byte-order mark (PowerShell redirection), and BE without one
SELECT name FROM flakeguard.parse_junit(
    '\xfffe3c003f0078006d006c002000760065007200730069006f006e003d00220031002e0030002200'
    '200065006e0063006f00640069006e0067003d0022005500540046002d003100360022003f003e00'
    '0d000a003c0074006500730074007300750069007400650020006e0061006d0065003d0022007300'
    '22003e003c007400650073007400630061007300650020006e0061006d0065003d002200e9002200'
    '2f003e003c002f007400650073007400730075006900740065003e00'::bytea);
SELECT name FROM flakeguard.parse_junit(
    '\x003c007400650073007400730075006900740065003e003c00740065007300740063006100730065'
    '0020006e0061006d0065003d0022d834dd1e0020006200650022002f003e003c002f007400650073'
    '007400730075006900740065003e'::bytea);
-- bytea: invalid UTF-8 is rejected, with a hint to declare the real encoding
SELECT * FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'hostile/bad_utf8.xml'));
-- an encoding libxml2 does not know
SELECT * FROM flakeguard.parse_junit(convert_to('<?xml version="1.0" encoding="x-klingon"?><testsuite/>', 'UTF8'));

-- text: already decoded, so the declared encoding is ignored
SELECT name FROM flakeguard.parse_junit(
    '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite><testcase name="café ✓ 𝄞"/></testsuite>'::text);
SELECT name FROM flakeguard.parse_junit(
    '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="declared utf-16"/></testsuite>'::text);

-- a database in another encoding: text is converted on the way in and out
SELECT current_database() AS regress_db \gset
CREATE DATABASE fg_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c fg_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION flakeguard;
SELECT name, message, octet_length(name) AS server_bytes
FROM flakeguard.parse_junit('<testsuite><testcase name="café"><failure message="naïve"/></testcase></testsuite>'::text);
SELECT name FROM flakeguard.parse_junit(convert_to('<testsuite><testcase name="crème"/></testsuite>', 'UTF8'));
-- a character LATIN1 cannot hold
SELECT name FROM flakeguard.parse_junit(convert_to('<testsuite><testcase name="€ sign"/></testsuite>', 'UTF8'));
\c :regress_db
DROP DATABASE fg_latin1;
