/*
 * hostile_shapes.cpp
 *	  How long flakeguard::JunitReader takes on hostile report shapes, against
 *	  a normal report of the same size (issue 12: every input up to
 *	  max_report_size must be parsed or refused in time linear in its size).
 *
 * Usage:
 *   hostile_shapes [--sizes 1,4,16] [--timeout SECONDS] [--shapes a,b]
 *   hostile_shapes --write SHAPE MB FILE     write one shape to FILE
 *
 * Each measurement runs in a forked child under alarm(timeout), so a shape
 * that is still quadratic shows as "> N s" instead of hanging the run.
 * Output is a Markdown table: per shape and size (MB = 10^6 bytes) the wall
 * time, the ratio against the normal report of that size, and the outcome
 * (rows, or the SQLSTATE and message it was refused with).  Nothing here
 * asserts a timing.
 */
#include "flakeguard/core/parse_junit.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

using Gen = std::function<std::string(std::size_t)>;

/* a normal Surefire-like report of about n bytes */
std::string
normal(std::size_t n)
{
	std::string s = "<?xml version=\"1.0\"?>\n<testsuites>\n<testsuite name=\"com.acme.Suite\" tests=\"1\">\n";
	for (std::size_t i = 0; s.size() < n; i++) {
		s += "<testcase name=\"test_" + std::to_string(i) + "\" classname=\"com.acme.Class" + std::to_string(i % 97) +
			 "\" time=\"0.0" + std::to_string(i % 10) + "\"";
		if (i % 10 == 0)
			s += "><failure message=\"expected true\" type=\"AssertionError\">at com.acme.Class.test(Class.java:" +
				 std::to_string(i) + ")\nat org.junit.Assert.fail(Assert.java:88)\n</failure></testcase>\n";
		else
			s += "/>\n";
	}
	return s + "</testsuite>\n</testsuites>\n";
}

/* one start tag with as many attributes as fit */
std::string
many_attributes(std::size_t n)
{
	std::string s = "<testsuite><testcase name=\"t\"";
	for (std::size_t i = 0; s.size() < n; i++)
		s += " a" + std::to_string(i) + "=\"\"";
	return s + "/></testsuite>";
}

/* many start tags, each with 250 attributes (under the default limit of 256) */
std::string
many_tags_250_attributes(std::size_t n)
{
	std::string s = "<testsuite>";
	std::string tag = "<x";
	for (int i = 0; i < 250; i++)
		tag += " a" + std::to_string(i) + "=\"\"";
	tag += "/>\n";
	while (s.size() < n)
		s += tag;
	return s + "</testsuite>";
}

/* one start tag with as many namespace declarations as fit */
std::string
many_namespaces(std::size_t n)
{
	std::string s = "<testsuite";
	for (std::size_t i = 0; s.size() < n; i++)
		s += " xmlns:p" + std::to_string(i) + "=\"u\"";
	return s + "/>";
}

/* `depth` nested elements declaring 30 namespaces each, then attributes with an unbound prefix (a full search each) */
std::string
nested_namespaces_at(std::size_t n, int depth)
{
	std::string s = "<testsuites>";
	for (int d = 0; d < depth; d++) {
		s += "<testsuite";
		for (int i = 0; i < 30; i++)
			s += " xmlns:p" + std::to_string(i) + "=\"u" + std::to_string(d) + "\"";
		s += ">";
	}
	std::string tag = "<x";
	for (int i = 0; i < 30; i++)
		tag += " q:a" + std::to_string(i) + "=\"\"";
	tag += "/>\n";
	while (s.size() < n)
		s += tag;
	for (int d = 0; d < depth; d++)
		s += "</testsuite>";
	return s + "</testsuites>";
}

/* 240 distinct prefixes in scope (8 levels of 30), attributes with the outermost one: a 240-entry search each */
std::string
deep_prefix_lookups(std::size_t n)
{
	std::string s = "<testsuites>";
	for (int d = 0; d < 8; d++) {
		s += "<testsuite";
		for (int i = 0; i < 30; i++)
			s += " xmlns:p" + std::to_string(d * 30 + i) + "=\"http://example.com/" + std::to_string(i) + "\"";
		s += ">";
	}
	std::string tag = "<x";
	for (int i = 0; i < 30; i++)
		tag += " p0:a" + std::to_string(i) + "=\"\"";
	tag += "/>\n";
	while (s.size() < n)
		s += tag;
	for (int d = 0; d < 8; d++)
		s += "</testsuite>";
	return s + "</testsuites>";
}

/* attributes with an unbound prefix and no declaration at all: one namespace error each */
std::string
unbound_prefixes(std::size_t n)
{
	return nested_namespaces_at(n, 0);
}

/* 1200 declarations in scope */
std::string
nested_namespaces(std::size_t n)
{
	return nested_namespaces_at(n, 40);
}

/* 240 declarations in scope: the most the default max_attributes allows */
std::string
nested_namespaces_allowed(std::size_t n)
{
	return nested_namespaces_at(n, 8);
}

/* element and attribute names of 40,000 characters, repeated */
std::string
long_names(std::size_t n)
{
	std::string name(40000, 'n');
	std::string s = "<testsuite>";
	while (s.size() < n)
		s += "<" + name + " " + name + "=\"v\"/>\n";
	return s + "</testsuite>";
}

/* start tags of 9.8 MB (two 4.9 MB values: under libxml2's 10 MB), each spanning 150 input chunks */
std::string
huge_attribute_values(std::size_t n)
{
	std::string value(std::min<std::size_t>(4900000, n / 2), 'v');
	std::string tag = "<testcase name=\"t\" a=\"" + value + "\" b=\"" + value + "\"/>";
	std::string s = "<testsuite>" + tag;
	while (s.size() + tag.size() < n) /* stay under n: 100 MB must fit max_report_size */
		s += tag;
	return s + "</testsuite>";
}

/* one failure text as large as the report */
std::string
huge_text(std::size_t n)
{
	std::string s = "<testsuite><testcase name=\"t\"><failure>";
	s.append(n, 'x');
	return s + "</failure></testcase></testsuite>";
}

/* comments of 9 MB */
std::string
huge_comments(std::size_t n)
{
	std::string comment = "<!--" + std::string(std::min<std::size_t>(9000000, n), 'c') + "-->";
	std::string s = "<testsuite>" + comment;
	while (s.size() + comment.size() < n)
		s += comment;
	return s + "</testsuite>";
}

/* processing instructions of 9 MB */
std::string
huge_pis(std::size_t n)
{
	std::string pi = "<?pi " + std::string(std::min<std::size_t>(9000000, n), 'c') + "?>";
	std::string s = "<testsuite>" + pi;
	while (s.size() + pi.size() < n)
		s += pi;
	return s + "</testsuite>";
}

/* CDATA as large as the report */
std::string
huge_cdata(std::size_t n)
{
	std::string s = "<testsuite><testcase name=\"t\"><failure><![CDATA[";
	s.append(n, 'x');
	return s + "]]></failure></testcase></testsuite>";
}

/* many distinct tests, minimal markup */
std::string
distinct_tests(std::size_t n)
{
	std::string s = "<testsuite>";
	for (std::size_t i = 0; s.size() < n; i++)
		s += "<testcase name=\"" + std::to_string(i) + "\"/>";
	return s + "</testsuite>";
}

/* one test repeated: many retries of one identity */
std::string
retries_of_one(std::size_t n)
{
	std::string s = "<testsuite>";
	while (s.size() < n)
		s += "<testcase name=\"t\"/>";
	return s + "</testsuite>";
}

/* cases with 10,000 reruns each (the per-case limit) */
std::string
reruns(std::size_t n)
{
	std::string s = "<testsuite>";
	while (s.size() < n) {
		s += "<testcase name=\"t\">";
		for (int i = 0; i < 10000 && s.size() < n; i++)
			s += "<rerunFailure/>";
		s += "</testcase>";
	}
	return s + "</testsuite>";
}

/* nesting to depth 49 (under the default limit of 50), repeated */
std::string
deep_nesting(std::size_t n)
{
	std::string s = "<testsuites>";
	while (s.size() < n) {
		for (int d = 0; d < 48; d++)
			s += "<testsuite>";
		s += "<testcase name=\"t\"/>";
		for (int d = 0; d < 48; d++)
			s += "</testsuite>";
	}
	return s + "</testsuites>";
}

struct Shape {
	const char *name;
	Gen gen;
};

const std::vector<Shape> kShapes = {
	{"normal", normal},
	{"many_attributes", many_attributes},
	{"many_tags_250_attributes", many_tags_250_attributes},
	{"many_namespaces", many_namespaces},
	{"nested_namespaces", nested_namespaces},
	{"nested_namespaces_allowed", nested_namespaces_allowed},
	{"unbound_prefixes", unbound_prefixes},
	{"deep_prefix_lookups", deep_prefix_lookups},
	{"long_names", long_names},
	{"huge_attribute_values", huge_attribute_values},
	{"huge_text", huge_text},
	{"huge_cdata", huge_cdata},
	{"huge_comments", huge_comments},
	{"huge_pis", huge_pis},
	{"distinct_tests", distinct_tests},
	{"retries_of_one", retries_of_one},
	{"reruns", reruns},
	{"deep_nesting", deep_nesting},
};

/* Parses doc in a child; returns seconds (negative: timed out) and the outcome in out. */
double
measure(const std::string &doc, unsigned timeout, std::string &outcome)
{
	int fd[2];
	if (pipe(fd) != 0)
		std::abort();
	auto t0 = std::chrono::steady_clock::now();
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		alarm(timeout);
		std::string result;
		try {
			flakeguard::JunitLimits limits; /* the defaults, as in the server */
			flakeguard::JunitReader reader(doc, flakeguard::JunitInput::utf8, limits);
			flakeguard::JunitCase c;
			std::size_t rows = 0;
			while (reader.next(c))
				rows++;
			result = std::to_string(rows) + " rows";
		} catch (const flakeguard::Error &e) {
			result = std::string(e.sqlstate()) + " " + e.what();
		} catch (const std::exception &e) {
			result = std::string("exception: ") + e.what();
		}
		if (write(fd[1], result.data(), result.size()) < 0)
			_exit(2);
		_exit(0);
	}
	close(fd[1]);
	char buf[512];
	ssize_t got = read(fd[0], buf, sizeof(buf));
	close(fd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	if (WIFSIGNALED(status)) {
		outcome = WTERMSIG(status) == SIGALRM ? "still running at the timeout" : "crashed";
		return WTERMSIG(status) == SIGALRM ? -s : s;
	}
	outcome = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "?";
	return s;
}

std::vector<std::string>
split(const std::string &s)
{
	std::vector<std::string> out;
	std::size_t at = 0;
	while (at <= s.size()) {
		std::size_t comma = s.find(',', at);
		out.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
		if (comma == std::string::npos)
			break;
		at = comma + 1;
	}
	return out;
}

} // namespace

int
main(int argc, char **argv)
{
	std::vector<std::string> sizes = {"1", "4", "16"};
	std::vector<std::string> only;
	unsigned timeout = 60;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--sizes" && i + 1 < argc)
			sizes = split(argv[++i]);
		else if (a == "--timeout" && i + 1 < argc)
			timeout = static_cast<unsigned>(std::atoi(argv[++i]));
		else if (a == "--shapes" && i + 1 < argc)
			only = split(argv[++i]);
		else if (a == "--write" && i + 3 < argc) {
			std::string shape = argv[i + 1];
			auto bytes = static_cast<std::size_t>(std::atof(argv[i + 2]) * 1e6);
			for (const Shape &sh : kShapes)
				if (shape == sh.name) {
					std::ofstream(argv[i + 3], std::ios::binary) << sh.gen(bytes);
					return 0;
				}
			std::fprintf(stderr, "unknown shape %s\n", shape.c_str());
			return 2;
		} else {
			std::fprintf(
				stderr,
				"usage: hostile_shapes [--sizes 1,4,16] [--timeout S] [--shapes a,b] | --write SHAPE MB FILE\n");
			return 2;
		}
	}
	std::printf("| shape | MB | seconds | vs normal | outcome |\n|---|---:|---:|---:|---|\n");
	for (const std::string &mb : sizes) {
		auto bytes = static_cast<std::size_t>(std::atof(mb.c_str()) * 1e6);
		std::string outcome;
		std::string base_doc = normal(bytes);
		double base = measure(base_doc, timeout, outcome);
		for (const Shape &sh : kShapes) {
			if (!only.empty() && std::find(only.begin(), only.end(), std::string(sh.name)) == only.end() &&
				std::strcmp(sh.name, "normal") != 0)
				continue;
			std::string doc = sh.gen(bytes);
			double s = std::strcmp(sh.name, "normal") == 0 ? base : measure(doc, timeout, outcome);
			if (std::strcmp(sh.name, "normal") == 0)
				measure(base_doc, timeout, outcome);
			char secs[32], ratio[32];
			if (s < 0)
				std::snprintf(secs, sizeof(secs), "> %u", timeout);
			else
				std::snprintf(secs, sizeof(secs), "%.3f", s);
			std::snprintf(ratio, sizeof(ratio), s < 0 ? "> %.0fx" : "%.1fx", (s < 0 ? -s : s) / base);
			std::printf("| %s | %.1f | %s | %s | %s |\n", sh.name, doc.size() / 1e6, secs, ratio, outcome.c_str());
			std::fflush(stdout);
		}
	}
	return 0;
}
