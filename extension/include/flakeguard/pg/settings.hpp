/*
 * settings.hpp
 *	  The flakeguard.* configuration parameters, as the core wants them.
 */
#pragma once

#include "flakeguard/core/flake_score.hpp"
#include "flakeguard/core/parse_junit.hpp"

namespace flakeguard::pg {

/* Current values of flakeguard.max_report_size, max_depth, max_message_length, max_stack_length. */
JunitLimits junit_limits();

/* The scoring policy of the flakeguard.* settings (per-repository overrides live in flakeguard.policy). */
ScoringPolicy scoring_policy();

} // namespace flakeguard::pg
