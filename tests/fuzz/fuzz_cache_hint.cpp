/*
 * fuzz_cache_hint.cpp
 *	  libFuzzer target for what the sidecar reads from outside: NOTIFY
 *	  payloads (sidecar/src/cache.cpp parse_hint, json.cpp) and stream entries
 *	  (sidecar/src/ingest_stream.cpp decode_upload).  Anyone allowed to NOTIFY
 *	  on the channel or XADD to the stream can send these bytes.
 *
 * Properties: parse_hint and parse_json either accept or throw
 * std::invalid_argument; a hint parse_hint accepts, fed to the cache's state
 * machine (cache_state.cpp), leaves at most one pending change for its
 * repository, at its version or above, whose keys all carry the repository's
 * hash tag, and an applied change is no longer pending; decode_upload either accepts or throws EntryError, and what it
 *accepts encodes and decodes to the same upload; decoding by moving the reports agrees with it and, when it rejects,
 *leaves the fields as they were.
 */
#include "cache.hpp"
#include "cache_state.hpp"
#include "ingest_stream.hpp"
#include "json.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

using namespace flakeguard::sidecar;

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view input(reinterpret_cast<const char *>(data), size);
	try {
		const Hint hint = parse_hint(input);
		CacheState state(CacheKeys{"fg:"}, true, 5000);
		state.names(std::map<std::int64_t, std::string>{{1, "r"}, {2, "a}:*{b"}});
		const CacheAction first = state.hint(hint);
		if (first.kind == CacheAction::Kind::read_names && state.names(std::nullopt).size() != 1)
			std::abort(); /* an id the names do not hold is dropped */
		for (const CacheAction &a : state.pending_actions()) {
			if (a.version < hint.version || (a.kind == CacheAction::Kind::apply && a.tests.size() > pending_limit))
				std::abort();
			const std::string base = CacheKeys{"fg:"}.base(a.repo);
			for (const std::string &key : a.unlink)
				if (key.compare(0, base.size(), base) != 0)
					std::abort();
			CacheDone done = state.done(a, true);
			for (const CacheFill &f : done.refill)
				if (f.key.compare(0, base.size(), base) != 0)
					std::abort();
		}
		if (!state.pending().empty())
			std::abort();
		/* the same hint against versions read back: a reconcile's actions are whole-repository invalidations */
		const std::int64_t behind = hint.version > INT64_MIN ? hint.version - 1 : hint.version;
		for (const CacheAction &a :
			 state.reconcile({{"r", hint.version, behind}, {"a}:*{b", hint.version, std::nullopt}}, true, 0))
			if (a.kind != CacheAction::Kind::invalidate_all)
				std::abort();
	} catch (const std::invalid_argument &) {
	}
	try {
		parse_json(input);
	} catch (const std::invalid_argument &) {
	}

	/* the input as stream fields: NUL separates names and values */
	Fields fields;
	std::size_t at = 0;
	while (at < size) {
		std::size_t name_end = input.find('\0', at);
		if (name_end == std::string_view::npos)
			break;
		std::size_t value_end = input.find('\0', name_end + 1);
		if (value_end == std::string_view::npos)
			value_end = size;
		fields.emplace_back(std::string(input.substr(at, name_end - at)),
							std::string(input.substr(name_end + 1, value_end - name_end - 1)));
		at = value_end + 1;
	}
	/* decoding by moving the reports gives the same upload, and moves nothing when it rejects */
	try {
		Fields moved = fields;
		Upload a = decode_upload(std::move(moved), 1 << 16);
		Upload b = decode_upload(fields, 1 << 16);
		if (a.files != b.files || a.repo != b.repo)
			std::abort();
	} catch (const EntryError &) {
		Fields moved = fields;
		try {
			decode_upload(std::move(moved), 1 << 16);
		} catch (const EntryError &) {
		}
		if (moved != fields)
			std::abort();
	}
	try {
		Upload u = decode_upload(fields, 1 << 16);
		Upload again = decode_upload(encode_upload(u), 1 << 16);
		if (again.repo != u.repo || again.run_id != u.run_id || again.attempt != u.attempt || again.job != u.job ||
			again.commit_sha != u.commit_sha || again.branch != u.branch || again.created_at != u.created_at ||
			again.files != u.files)
			std::abort();
	} catch (const EntryError &) {
	}
	return 0;
}
