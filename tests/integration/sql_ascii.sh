#!/usr/bin/env bash
# In a SQL_ASCII database PostgreSQL hands text through unconverted, so the
# glue must keep every value's length: parse_junit(text) once ran strlen()
# over a datum that is not NUL-terminated and read the next column's bytes
# into the report (issue 12, defect 4).  Every text-taking function is
# checked on a value stored right before another column.
. "$(dirname "$0")/lib.sh"

db=fg_sql_ascii
q "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
q "CREATE DATABASE $db ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
qa() { PGDATABASE=$db psql_as_user -At -c "$1" 2>&1; }
qa 'CREATE EXTENSION flakeguard' >/dev/null
check "the database is SQL_ASCII" "SQL_ASCII" "$(qa 'SHOW server_encoding')"

# an unfinished report followed, in the same heap tuple, by a column holding its end
qa "CREATE TABLE r (report text, next text)" >/dev/null
qa "INSERT INTO r VALUES ('<testsuite><testcase name=\"mine\"/>', '<testcase name=\"stolen\"/></testsuite>')" >/dev/null
check "parse_junit(text) reads only its own value (the report is truncated)" \
	"ERROR:  JUnit report is truncated" \
	"$(qa 'SELECT c.name FROM r, flakeguard.parse_junit(r.report) c' | head -n1)"
check "no name from the next column" "" \
	"$(qa 'SELECT c.name FROM r, flakeguard.parse_junit(r.report) c' | grep stolen)"
check "the select-list form reads only its own value too" \
	"ERROR:  JUnit report is truncated" \
	"$(qa 'SELECT (flakeguard.parse_junit(report)).name FROM r' | head -n1)"

# a complete report in the same place parses to exactly its own rows; bytes pass through as they are
qa "CREATE TABLE ok (report text, next text)" >/dev/null
qa "INSERT INTO ok VALUES ('<testsuite><testcase classname=\"c\" name=\"café\"/></testsuite>', '<testcase name=\"stolen\"/>')" >/dev/null
check "a complete report: its own row only" "c.café|1" \
	"$(qa 'SELECT c.full_name, count(*) OVER () FROM ok, flakeguard.parse_junit(ok.report) c')"

# the other text-taking functions, on a value followed by another column
qa "CREATE TABLE t (name text, next text)" >/dev/null
qa "INSERT INTO t VALUES ('com.acme.Cart.test', 'NEXTCOLUMN')" >/dev/null
check "test_id reads only its own value" \
	"$(qa "SELECT flakeguard.test_id('com.acme.Cart.test')")" "$(qa 'SELECT flakeguard.test_id(name) FROM t')"
check "full_name reads only its own values" "com.acme.Cart.test.x" \
	"$(qa "SELECT flakeguard.full_name(name, 'x') FROM t")"
check "normalize_message reads only its own value" \
	"$(qa "SELECT flakeguard.normalize_message('com.acme.Cart.test')")" \
	"$(qa 'SELECT flakeguard.normalize_message(name) FROM t')"
check "message_signature reads only its own value" \
	"$(qa "SELECT flakeguard.message_signature('com.acme.Cart.test')")" \
	"$(qa 'SELECT flakeguard.message_signature(name) FROM t')"

q "DROP DATABASE $db" >/dev/null
finish
