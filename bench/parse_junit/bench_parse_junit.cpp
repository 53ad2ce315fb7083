/*
 * bench_parse_junit.cpp
 *	  Core parser benchmark: flakeguard::JunitReader against a bare libxml2
 *	  SAX2 pass over the same bytes, side by side in one run.
 *
 * Usage:
 *   bench_parse_junit                        the throughput table and the memory figures
 *   bench_parse_junit --quick                fewer sizes (100 .. 100k), for a smoke run
 *   bench_parse_junit --sizes 1000,1000000   only these sizes (memory figures for the largest)
 *   bench_parse_junit --write-report FILE SIZE_MB   write a generated report of about SIZE_MB (10^6 bytes)
 *   bench_parse_junit --write-tests FILE N   write a generated report of N tests
 *   bench_parse_junit --loop reader|sax N REPS   parse an N-test report REPS times (for perf/callgrind)
 *   bench_parse_junit --memory-child N       (internal) memory figures for N tests, in a fresh process
 *
 * The reports are synthetic but Surefire-shaped and deterministic (fixed
 * seed): <testsuites> of <testsuite> elements with a <properties> block,
 * per test a <testcase name classname time>, ~10% with <failure message type>
 * and a multi-line stack trace, ~3% <skipped/>, ~2% with <flakyFailure> and
 * <stackTrace>, some <system-out> CDATA blocks.
 *
 * Throughput is bytes / best-of-N wall time (steady_clock), MB = 10^6 bytes.
 * The three measurements of one size are interleaved in every repetition.
 * Output is Markdown; lines starting with "summary:" are collected by
 * bench/run.sh into the summary table of bench/RESULTS.md.
 */
#include "flakeguard/core/parse_junit.hpp"

#include <libxml/parser.h>
#include <libxml/xmlmemory.h>
#include <libxml/xmlversion.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <string_view>
#include <vector>

/* ---------------------------------------------------------------------
 * Heap accounting (memory child only): global operator new/delete for the
 * reader's C++ state, xmlMemSetup() hooks for libxml2.  Counting is off
 * unless g_counting is set, and the hooks are installed only in the memory
 * child, so the timing runs use the plain allocators.
 * ------------------------------------------------------------------- */
namespace {

struct HeapCounter {
	long long live = 0;
	long long peak = 0;
	void
	add(void *p)
	{
		if (p == nullptr)
			return;
		live += static_cast<long long>(malloc_usable_size(p));
		peak = std::max(peak, live);
	}
	void
	sub(void *p)
	{
		if (p != nullptr)
			live -= static_cast<long long>(malloc_usable_size(p));
	}
	void
	reset()
	{
		live = peak = 0;
	}
};

bool g_counting = false;
HeapCounter g_cxx_heap;
HeapCounter g_xml_heap;

void *
xml_malloc_hook(size_t n)
{
	void *p = std::malloc(n);
	if (g_counting)
		g_xml_heap.add(p);
	return p;
}

void *
xml_realloc_hook(void *old, size_t n)
{
	if (g_counting)
		g_xml_heap.sub(old);
	void *p = std::realloc(old, n);
	if (g_counting)
		g_xml_heap.add(p != nullptr ? p : (n == 0 ? nullptr : old));
	return p;
}

void
xml_free_hook(void *p)
{
	if (g_counting)
		g_xml_heap.sub(p);
	std::free(p);
}

char *
xml_strdup_hook(const char *s)
{
	size_t n = std::strlen(s) + 1;
	auto *p = static_cast<char *>(xml_malloc_hook(n));
	if (p != nullptr)
		std::memcpy(p, s, n);
	return p;
}

void *
counted_new(std::size_t n)
{
	void *p = std::malloc(n == 0 ? 1 : n);
	if (p == nullptr)
		throw std::bad_alloc();
	if (g_counting)
		g_cxx_heap.add(p);
	return p;
}

void
counted_delete(void *p) noexcept
{
	if (g_counting)
		g_cxx_heap.sub(p);
	std::free(p);
}

} // namespace

void *
operator new(std::size_t n)
{
	return counted_new(n);
}
void *
operator new[](std::size_t n)
{
	return counted_new(n);
}
void
operator delete(void *p) noexcept
{
	counted_delete(p);
}
void
operator delete[](void *p) noexcept
{
	counted_delete(p);
}
void
operator delete(void *p, std::size_t) noexcept
{
	counted_delete(p);
}
void
operator delete[](void *p, std::size_t) noexcept
{
	counted_delete(p);
}

namespace {

/* ---------------------------------------------------------------------
 * Deterministic Surefire-like report generator.
 * ------------------------------------------------------------------- */
class Rng {
  public:
	explicit Rng(std::uint64_t seed) : s_(seed) {}
	std::uint64_t
	next()
	{ /* splitmix64 */
		std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		return z ^ (z >> 31);
	}
	unsigned
	below(unsigned n)
	{
		return static_cast<unsigned>(next() % n);
	}
	bool
	percent(unsigned p)
	{
		return below(100) < p;
	}

  private:
	std::uint64_t s_;
};

const char *const kPackages[] = {"com.acme.billing", "com.acme.billing.invoice", "com.acme.auth",
								 "com.acme.auth.session", "com.acme.catalog", "com.acme.catalog.search",
								 "com.acme.orders", "com.acme.orders.payment", "org.example.platform.http",
								 "org.example.platform.storage"};
const char *const kClasses[] = {"InvoiceService", "TokenValidator", "SessionStore", "PriceCalculator",
								"SearchIndex", "OrderRepository", "PaymentGateway", "HttpClientFactory",
								"BlobStorage", "RetryPolicy", "CurrencyConverter", "RateLimiter"};
const char *const kVerbs[] = {"should", "must", "rejects", "accepts", "computes", "returns", "handles", "retries"};
const char *const kNouns[] = {"EmptyInput", "ExpiredToken", "LargePayload", "ConcurrentUpdates", "UnicodeNames",
							  "MissingCurrency", "NegativeAmounts", "TimeoutOnSlowBackend", "DuplicateKeys",
							  "PaginationBoundaries", "NullFields", "CachedResponse"};
const char *const kFrameworkFrames[] = {
	"\tat org.junit.jupiter.api.AssertionUtils.fail(AssertionUtils.java:55)\n",
	"\tat org.junit.jupiter.api.AssertionUtils.failNotEqual(AssertionUtils.java:62)\n",
	"\tat org.junit.jupiter.api.AssertEquals.assertEquals(AssertEquals.java:150)\n",
	"\tat org.junit.jupiter.api.Assertions.assertEquals(Assertions.java:560)\n",
	"\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)\n",
	"\tat java.base/java.lang.reflect.Method.invoke(Method.java:568)\n",
	"\tat org.junit.platform.commons.util.ReflectionUtils.invokeMethod(ReflectionUtils.java:727)\n",
	"\tat org.junit.jupiter.engine.execution.MethodInvocation.proceed(MethodInvocation.java:60)\n",
	"\tat org.junit.jupiter.engine.execution.InvocationInterceptorChain$ValidatingInvocation.proceed(InvocationInterceptorChain.java:131)\n",
	"\tat org.junit.jupiter.engine.extension.TimeoutExtension.intercept(TimeoutExtension.java:156)\n",
	"\tat org.junit.jupiter.engine.descriptor.TestMethodTestDescriptor.invokeTestMethod(TestMethodTestDescriptor.java:217)\n",
	"\tat org.junit.platform.engine.support.hierarchical.ThrowableCollector.execute(ThrowableCollector.java:73)\n",
	"\tat org.junit.platform.engine.support.hierarchical.NodeTestTask.executeRecursively(NodeTestTask.java:138)\n",
	"\tat org.apache.maven.surefire.junitplatform.JUnitPlatformProvider.invokeAllTests(JUnitPlatformProvider.java:150)\n",
	"\tat org.apache.maven.surefire.booter.ForkedBooter.main(ForkedBooter.java:495)\n"};

struct Failure {
	const char *type;
	const char *message; /* already escaped for an attribute and for text */
};
const Failure kFailures[] = {
	{"org.opentest4j.AssertionFailedError", "expected: &lt;42&gt; but was: &lt;41&gt;"},
	{"org.opentest4j.AssertionFailedError", "expected: &lt;true&gt; but was: &lt;false&gt;"},
	{"java.net.ConnectException", "Connection refused: localhost/127.0.0.1:5432"},
	{"org.awaitility.core.ConditionTimeoutException",
	 "Condition with lambda expression in com.acme.orders.OrderFlowIT was not fulfilled within 5 seconds."},
	{"java.lang.NullPointerException",
	 "Cannot invoke &quot;com.acme.billing.Invoice.total()&quot; because &quot;invoice&quot; is null"},
	{"java.lang.IllegalStateException", "Session store is closed &amp; cannot accept writes"},
};

class Generator {
  public:
	explicit Generator(std::uint64_t seed = 42) : rng_(seed) {}

	/* Appends suites until `tests` test cases (or, with tests == 0, min_bytes bytes) are written. */
	std::string
	report(std::size_t tests, std::size_t min_bytes = 0)
	{
		std::string out;
		out.reserve(tests > 0 ? tests * 420 + 4096 : min_bytes + (1u << 20));
		out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"acme-platform\">\n";
		std::size_t written = 0;
		while (tests > 0 ? written < tests : out.size() < min_bytes) {
			std::size_t n = 5 + rng_.below(56);
			if (tests > 0)
				n = std::min(n, tests - written);
			suite(out, n);
			written += n;
		}
		out += "</testsuites>\n";
		tests_ = written;
		return out;
	}

	std::size_t tests_written() const { return tests_; }
	std::size_t flaky_written() const { return flaky_; }

  private:
	Rng rng_;
	std::size_t suite_no_ = 0;
	std::size_t tests_ = 0;
	std::size_t flaky_ = 0;
	std::string body_;
	char num_[64];

	const char *
	fmt_time(double seconds)
	{
		std::snprintf(num_, sizeof num_, "%.3f", seconds);
		return num_;
	}

	void
	stack(std::string &out, const char *type, const char *message, const std::string &cls, const std::string &method)
	{
		out += type;
		out += ": ";
		out += message;
		out += '\n';
		unsigned app = 1 + rng_.below(4);
		for (unsigned i = 0; i < app; i++) {
			out += "\tat ";
			out += cls;
			out += '.';
			out += i == app - 1 ? method : std::string("helper") + std::to_string(i);
			out += '(';
			out += cls.substr(cls.rfind('.') + 1);
			out += ".java:";
			out += std::to_string(20 + rng_.below(400));
			out += ")\n";
		}
		unsigned fw = 6 + rng_.below(10);
		unsigned first = rng_.below(4);
		for (unsigned i = 0; i < fw; i++)
			out += kFrameworkFrames[std::min<std::size_t>(first + i, std::size(kFrameworkFrames) - 1)];
	}

	void
	system_out(std::string &out, const char *indent)
	{
		out += indent;
		out += "<system-out><![CDATA[";
		unsigned lines = 2 + rng_.below(6);
		for (unsigned i = 0; i < lines; i++) {
			out += "2024-05-01 12:00:0";
			out += static_cast<char>('0' + rng_.below(10));
			out += ".123 INFO  [main] c.a.p.Service - request id=";
			out += std::to_string(rng_.next() % 1000000);
			out += i % 3 == 2 ? " took 12 ms <ok> & done\n" : " handled\n";
		}
		out += "]]></system-out>\n";
	}

	void
	suite(std::string &out, std::size_t n)
	{
		std::string cls = std::string(kPackages[rng_.below(std::size(kPackages))]) + '.' +
						  kClasses[rng_.below(std::size(kClasses))] + std::to_string(suite_no_++) + "Test";
		body_.clear();
		std::size_t failures = 0, skipped = 0;
		double total = 0;
		for (std::size_t i = 0; i < n; i++) {
			std::string method = std::string(kVerbs[rng_.below(std::size(kVerbs))]) +
								 kNouns[rng_.below(std::size(kNouns))] + '_' + std::to_string(i);
			double t = (rng_.below(1000) < 950) ? rng_.below(200) / 1000.0 : rng_.below(30000) / 1000.0;
			total += t;
			unsigned roll = rng_.below(100);
			body_ += "    <testcase name=\"";
			body_ += method;
			body_ += "\" classname=\"";
			body_ += cls;
			body_ += "\" time=\"";
			body_ += fmt_time(t);
			body_ += '"';
			if (roll < 10) { /* failure */
				failures++;
				const Failure &f = kFailures[rng_.below(std::size(kFailures))];
				body_ += ">\n      <failure message=\"";
				body_ += f.message;
				body_ += "\" type=\"";
				body_ += f.type;
				body_ += "\">";
				stack(body_, f.type, f.message, cls, method);
				body_ += "</failure>\n";
				if (rng_.percent(50))
					system_out(body_, "      ");
				body_ += "    </testcase>\n";
			} else if (roll < 13) { /* skipped */
				skipped++;
				body_ += rng_.percent(50) ? ">\n      <skipped/>\n    </testcase>\n"
										  : ">\n      <skipped message=\"Disabled until ACME-1234 is fixed\"/>\n    </testcase>\n";
			} else if (roll < 15) { /* flaky: failed once, then passed */
				flaky_++;
				const Failure &f = kFailures[rng_.below(std::size(kFailures))];
				body_ += ">\n      <flakyFailure message=\"";
				body_ += f.message;
				body_ += "\" type=\"";
				body_ += f.type;
				body_ += "\">\n        <stackTrace>";
				stack(body_, f.type, f.message, cls, method);
				body_ += "</stackTrace>\n";
				system_out(body_, "        ");
				body_ += "      </flakyFailure>\n    </testcase>\n";
			} else if (roll < 20) { /* passed with output */
				body_ += ">\n";
				system_out(body_, "      ");
				body_ += "    </testcase>\n";
			} else {
				body_ += "/>\n";
			}
		}
		out += "  <testsuite xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
			   "xsi:noNamespaceSchemaLocation=\"https://maven.apache.org/surefire/maven-surefire-plugin/xsd/"
			   "surefire-test-report-3.0.xsd\" version=\"3.0\" name=\"";
		out += cls;
		out += "\" time=\"";
		out += fmt_time(total);
		out += "\" tests=\"";
		out += std::to_string(n);
		out += "\" errors=\"0\" skipped=\"";
		out += std::to_string(skipped);
		out += "\" failures=\"";
		out += std::to_string(failures);
		out += "\">\n    <properties>\n"
			   "      <property name=\"java.version\" value=\"17.0.9\"/>\n"
			   "      <property name=\"os.name\" value=\"Linux\"/>\n"
			   "      <property name=\"user.dir\" value=\"/home/ci/workspace/acme-platform\"/>\n"
			   "      <property name=\"file.encoding\" value=\"UTF-8\"/>\n"
			   "      <property name=\"surefire.test.class.path\" value=\"/home/ci/workspace/acme-platform/"
			   "target/test-classes:/home/ci/workspace/acme-platform/target/classes\"/>\n"
			   "    </properties>\n";
		out += body_;
		out += "  </testsuite>\n";
	}
};

/* ---------------------------------------------------------------------
 * The measured parses.
 * ------------------------------------------------------------------- */
constexpr std::size_t kChunk = 64 * 1024; /* as the reader */

struct SaxCount {
	std::size_t elements = 0;
};

void
noop_start(void *ctx, const xmlChar *, const xmlChar *, const xmlChar *, int, const xmlChar **, int, int,
		   const xmlChar **)
{
	static_cast<SaxCount *>(ctx)->elements++;
}
void
noop_end(void *, const xmlChar *, const xmlChar *, const xmlChar *)
{
}
void
noop_text(void *, const xmlChar *, int)
{
}

xmlSAXHandler
noop_handler()
{
	xmlSAXHandler h;
	std::memset(&h, 0, sizeof h);
	h.initialized = XML_SAX2_MAGIC;
	h.startElementNs = noop_start;
	h.endElementNs = noop_end;
	h.characters = noop_text;
	h.cdataBlock = noop_text;
	h.ignorableWhitespace = noop_text;
	return h;
}

void
die(const char *what)
{
	std::fprintf(stderr, "bench_parse_junit: %s\n", what);
	std::exit(1);
}

/* (a) bare SAX2, push parser fed in 64 kB chunks like the reader.  Returns elements seen. */
std::size_t
sax_push(std::string_view doc)
{
	xmlSAXHandler h = noop_handler();
	SaxCount count;
	int head = static_cast<int>(std::min<std::size_t>(4, doc.size()));
	xmlParserCtxtPtr ctxt = xmlCreatePushParserCtxt(&h, &count, doc.data(), head, nullptr);
	if (ctxt == nullptr)
		die("xmlCreatePushParserCtxt failed");
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET);
	std::size_t pos = static_cast<std::size_t>(head);
	do {
		std::size_t take = std::min(kChunk, doc.size() - pos);
		int last = pos + take == doc.size();
		xmlParseChunk(ctxt, doc.data() + pos, static_cast<int>(take), last);
		pos += take;
	} while (pos < doc.size());
	if (!ctxt->wellFormed)
		die("SAX push: document is not well-formed");
	if (ctxt->myDoc != nullptr)
		xmlFreeDoc(ctxt->myDoc);
	xmlFreeParserCtxt(ctxt);
	return count.elements;
}

/* (a') bare SAX2 over the whole buffer at once. */
std::size_t
sax_memory(std::string_view doc)
{
	xmlSAXHandler h = noop_handler();
	SaxCount count;
	if (xmlSAXUserParseMemory(&h, &count, doc.data(), static_cast<int>(doc.size())) != 0)
		die("xmlSAXUserParseMemory failed");
	return count.elements;
}

volatile double g_sink;

/* (b) the reader, every case moved out. Returns cases read. */
std::size_t
reader_pass(std::string_view doc, flakeguard::JunitInput kind = flakeguard::JunitInput::bytes)
{
	flakeguard::JunitLimits limits;
	limits.max_report_size = SIZE_MAX; /* 1M tests is larger than the 100 MB default */
	flakeguard::JunitReader reader(doc, kind, limits);
	flakeguard::JunitCase c;
	std::size_t n = 0;
	double sum = 0;
	std::size_t chars = 0;
	while (reader.next(c)) {
		n++;
		sum += c.duration_ms.value_or(0);
		chars += c.name.size() + (c.stack ? c.stack->size() : 0);
	}
	g_sink = sum + static_cast<double>(chars);
	return n;
}

double
now_ms()
{
	using namespace std::chrono;
	return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double
time_ms(F &&f)
{
	double t0 = now_ms();
	f();
	return now_ms() - t0;
}

long
proc_status_kb(const char *field)
{
	std::FILE *f = std::fopen("/proc/self/status", "r");
	if (f == nullptr)
		return -1;
	char line[256];
	long value = -1;
	std::size_t len = std::strlen(field);
	while (std::fgets(line, sizeof line, f) != nullptr)
		if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
			value = std::strtol(line + len + 1, nullptr, 10);
			break;
		}
	std::fclose(f);
	return value;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); false when not allowed. */
bool
reset_hwm()
{
	std::FILE *f = std::fopen("/proc/self/clear_refs", "w");
	if (f == nullptr)
		return false;
	bool ok = std::fputs("5", f) >= 0;
	return std::fclose(f) == 0 && ok;
}

const char *
mark(bool ok)
{
	return ok ? "✓" : "✗";
}

std::string
human_bytes(double b)
{
	char buf[64];
	if (b >= 1e6)
		std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
	else
		std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
	return buf;
}

/* ---------------------------------------------------------------------
 * Modes.
 * ------------------------------------------------------------------- */
int
memory_child(std::size_t tests)
{
	xmlMemSetup(xml_free_hook, xml_malloc_hook, xml_realloc_hook, xml_strdup_hook);
	xmlInitParser();
	Generator gen;
	std::string doc = gen.report(tests);
	doc.shrink_to_fit();
	/* warm up libxml2 and the allocator on a small document (dictionary, encoders) */
	{
		Generator small(7);
		std::string s = small.report(100);
		reader_pass(s);
		sax_push(s);
	}
	bool can_reset = reset_hwm();

	auto measure = [&](const char *what, auto &&pass) {
		if (can_reset)
			reset_hwm();
		long rss0 = proc_status_kb("VmRSS");
		long hwm0 = proc_status_kb("VmHWM");
		g_cxx_heap.reset();
		g_xml_heap.reset();
		g_counting = true;
		std::size_t n = pass();
		g_counting = false;
		long hwm1 = proc_status_kb("VmHWM");
		/* one line per pass: what, items, RSS before (kB), HWM before, HWM after, C++ heap peak, libxml2 heap peak (bytes) */
		std::printf("mem %s %zu %ld %ld %ld %lld %lld\n", what, n, rss0, hwm0, hwm1, g_cxx_heap.peak,
					g_xml_heap.peak);
	};
	std::printf("doc %zu %zu %d\n", doc.size(), gen.tests_written(), can_reset ? 1 : 0);
	measure("sax_push", [&] { return sax_push(doc); });
	measure("reader", [&] { return reader_pass(doc); });
	return 0;
}

int
write_report(const char *path, std::size_t tests, std::size_t min_bytes)
{
	Generator gen;
	std::string doc = gen.report(tests, min_bytes);
	std::ofstream f(path, std::ios::binary);
	f.write(doc.data(), static_cast<std::streamsize>(doc.size()));
	f.close();
	if (!f)
		die("could not write the report");
	std::printf("wrote %s: %zu bytes, %zu tests (%zu with a flakyFailure)\n", path, doc.size(), gen.tests_written(),
				gen.flaky_written());
	return 0;
}

struct Row {
	std::size_t tests, bytes, cases, reps;
	double sax_push_ms, sax_mem_ms, reader_ms;
};

int
run_all(const char *self, std::vector<std::size_t> sizes)
{
	xmlInitParser();

	std::printf("libxml2 %s (LIBXML_VERSION %d), reader input kind: bytes (UTF-8 declared), MB = 10^6 bytes, "
				"times are best of N, the three passes interleaved in every repetition.\n\n",
				xmlParserVersion, LIBXML_VERSION);
	std::vector<Row> rows;
	for (std::size_t tests : sizes) {
		Generator gen;
		std::string doc = gen.report(tests);
		Row r{tests, doc.size(), 0, 0, 1e300, 1e300, 1e300};
		/* one warm-up of each, then enough repetitions for ~0.6 s per size, at least 5 */
		sax_push(doc);
		sax_memory(doc);
		double first = time_ms([&] { r.cases = reader_pass(doc); });
		if (r.cases != gen.tests_written() + gen.flaky_written())
			die("the reader returned an unexpected number of cases");
		std::size_t reps = static_cast<std::size_t>(std::clamp(600.0 / (3 * std::max(first, 1e-3)), 5.0, 2000.0));
		for (std::size_t i = 0; i < reps; i++) {
			r.sax_push_ms = std::min(r.sax_push_ms, time_ms([&] { sax_push(doc); }));
			r.sax_mem_ms = std::min(r.sax_mem_ms, time_ms([&] { sax_memory(doc); }));
			r.reader_ms = std::min(r.reader_ms, time_ms([&] { reader_pass(doc); }));
		}
		r.reps = reps;
		rows.push_back(r);
		std::fprintf(stderr, "  %zu tests done (%zu reps)\n", tests, reps);
	}

	auto mbs = [](std::size_t bytes, double ms) { return bytes / 1e6 / (ms / 1e3); };
	std::printf("| tests | bytes | cases | N | libxml2 SAX push MB/s | libxml2 SAX memory MB/s | JunitReader MB/s "
				"| reader time / SAX push time | reader ms | SAX push ms |\n");
	std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (const Row &r : rows)
		std::printf("| %zu | %zu | %zu | %zu | %.0f | %.0f | %.0f | %.2fx | %.3f | %.3f |\n", r.tests, r.bytes, r.cases,
					r.reps, mbs(r.bytes, r.sax_push_ms), mbs(r.bytes, r.sax_mem_ms), mbs(r.bytes, r.reader_ms),
					r.reader_ms / r.sax_push_ms, r.reader_ms, r.sax_push_ms);
	std::printf("\n(cases = executions the reader returned: every <testcase> plus one per <flakyFailure>.)\n\n");

	for (const Row &r : rows)
		if (r.tests == 10000) {
			double mb = mbs(r.bytes, r.reader_ms);
			std::printf("**10k tests: %.2f ms** (%.1f MB, %.0f MB/s; bare SAX push %.2f ms, %.0f MB/s)\n\n", r.reader_ms,
						r.bytes / 1e6, mb, r.sax_push_ms, mbs(r.bytes, r.sax_push_ms));
			std::printf("summary: | core parser, 10k tests | %.2f ms | ≤ 10 ms | %s |\n", r.reader_ms,
						mark(r.reader_ms <= 10));
			std::printf("summary: | core parser throughput, 10k tests | %.0f MB/s | ≥ 300 MB/s | %s |\n", mb,
						mark(mb >= 300));
			std::printf("summary: | core parser vs bare libxml2 SAX push, 10k tests | %.2fx the SAX time (%.0f vs %.0f "
						"MB/s) | (reference) | |\n",
						r.reader_ms / r.sax_push_ms, mb, mbs(r.bytes, r.sax_push_ms));
			std::printf("seed: | JUnit parser, a large file (10k tests) | ~800 ms | %.2f ms (core reader) | %.0fx faster |\n",
						r.reader_ms, 800.0 / r.reader_ms);
		}
	const Row &big = rows.back();
	std::printf("summary: | core parser throughput, %zu tests (%.0f MB) | %.0f MB/s | ≥ 300 MB/s | %s |\n", big.tests,
				big.bytes / 1e6, mbs(big.bytes, big.reader_ms), mark(mbs(big.bytes, big.reader_ms) >= 300));

	/* memory, in a fresh process so earlier peaks do not hide anything */
	std::size_t mem_tests = *std::max_element(sizes.begin(), sizes.end());
	std::string cmd = std::string(self) + " --memory-child " + std::to_string(mem_tests);
	std::FILE *p = popen(cmd.c_str(), "r");
	if (p == nullptr)
		die("popen failed");
	char line[512];
	std::size_t doc_bytes = 0, doc_tests = 0;
	int can_reset = 0;
	struct Mem {
		char what[32];
		std::size_t n;
		long rss0, hwm0, hwm1;
		long long cxx, xml;
	};
	std::vector<Mem> mems;
	while (std::fgets(line, sizeof line, p) != nullptr) {
		Mem m{};
		if (std::sscanf(line, "doc %zu %zu %d", &doc_bytes, &doc_tests, &can_reset) == 3)
			continue;
		if (std::sscanf(line, "mem %31s %zu %ld %ld %ld %lld %lld", m.what, &m.n, &m.rss0, &m.hwm0, &m.hwm1, &m.cxx,
						&m.xml) == 7)
			mems.push_back(m);
	}
	if (pclose(p) != 0 || mems.size() != 2)
		die("memory child failed");
	std::printf("\n### Memory while parsing %zu tests (%.0f MB, already in memory)\n\n", doc_tests, doc_bytes / 1e6);
	std::printf("Fresh process; the report is generated first, then %s, then one pass is measured. "
				"\"Heap peak\" counts live bytes from the allocators while the pass runs: C++ operator new (the "
				"reader's own state) and libxml2's xmlMalloc (xmlMemSetup hooks).\n\n",
				can_reset ? "VmHWM is reset to the current RSS (/proc/self/clear_refs = 5)"
						  : "VmHWM cannot be reset here, so growth is HWM after minus HWM before");
	std::printf("| pass | VmHWM growth | C++ heap peak | libxml2 heap peak |\n|---|---:|---:|---:|\n");
	long reader_growth_kb = 0;
	for (const Mem &m : mems) {
		long growth = m.hwm1 - (can_reset ? m.rss0 : m.hwm0);
		if (std::strcmp(m.what, "reader") == 0)
			reader_growth_kb = growth;
		std::printf("| %s | %s | %s | %s |\n",
					std::strcmp(m.what, "reader") == 0 ? "JunitReader" : "bare SAX push", human_bytes(growth * 1024.0).c_str(),
					human_bytes(static_cast<double>(m.cxx)).c_str(), human_bytes(static_cast<double>(m.xml)).c_str());
	}
	std::printf("\nsummary: | core parser RSS growth, %zu tests (%.0f MB) | %s | ≤ 64 MB | %s |\n", doc_tests,
				doc_bytes / 1e6, human_bytes(reader_growth_kb * 1024.0).c_str(), mark(reader_growth_kb * 1024.0 <= 64e6));
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc == 4 && std::strcmp(argv[1], "--write-report") == 0)
		return write_report(argv[2], 0, static_cast<std::size_t>(std::atof(argv[3]) * 1e6));
	if (argc == 4 && std::strcmp(argv[1], "--write-tests") == 0)
		return write_report(argv[2], std::strtoull(argv[3], nullptr, 10), 0);
	if (argc == 5 && std::strcmp(argv[1], "--loop") == 0) {
		/* for perf/callgrind: parse one generated report REPS times with one method only */
		Generator gen;
		std::string doc = gen.report(std::strtoull(argv[3], nullptr, 10));
		xmlInitParser();
		for (unsigned long i = 0, reps = std::strtoul(argv[4], nullptr, 10); i < reps; i++)
			std::strcmp(argv[2], "reader") == 0 ? reader_pass(doc) : sax_push(doc);
		return 0;
	}
	if (argc == 3 && std::strcmp(argv[1], "--memory-child") == 0)
		return memory_child(std::strtoull(argv[2], nullptr, 10));
	std::vector<std::size_t> sizes = {100, 1000, 10000, 100000, 1000000};
	bool ok = argc == 1;
	if (argc == 2 && std::strcmp(argv[1], "--quick") == 0) {
		sizes.pop_back();
		ok = true;
	}
	if (argc == 3 && std::strcmp(argv[1], "--sizes") == 0) {
		sizes.clear();
		for (const char *p = argv[2]; *p != '\0';) {
			char *end;
			unsigned long long v = std::strtoull(p, &end, 10);
			if (end == p || v == 0)
				die("--sizes wants a comma-separated list of test counts");
			sizes.push_back(v);
			p = *end == ',' ? end + 1 : end;
		}
		ok = !sizes.empty();
	}
	if (ok) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n <= 0)
			die("readlink /proc/self/exe failed");
		self[n] = '\0';
		return run_all(self, sizes);
	}
	std::fprintf(stderr,
				 "usage: %s [--quick | --sizes N,N,...] | --write-report FILE SIZE_MB | --write-tests FILE N | --loop reader|sax N REPS\n",
				 argv[0]);
	return 2;
}
