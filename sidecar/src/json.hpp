/*
 * json.hpp
 *	  The little JSON the sidecar reads (NOTIFY payloads, push --wait's
 *	  outcomes) and writes (those outcomes).
 */
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flakeguard::sidecar {

struct Json {
	enum class Type { null, boolean, number, string, array, object } type = Type::null;
	bool boolean = false;
	std::string text; /* a string's value, or a number as written */
	std::vector<Json> items;
	std::vector<std::pair<std::string, Json>> members;

	/* The member called key, or nullptr. */
	const Json *find(std::string_view key) const;
};

/* Parses one JSON document (bounded nesting); throws std::invalid_argument. */
Json parse_json(std::string_view text);

/* s as a JSON string literal, quotes included; bytes that are not UTF-8 become U+FFFD. */
std::string json_string(std::string_view s);

} // namespace flakeguard::sidecar
