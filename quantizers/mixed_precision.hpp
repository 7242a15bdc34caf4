// Per-layer mixed precision (Qua2SeDiMo-style, ALGORITHMS.md §6 and the §9 "Mixed precision"
// checklist item): an option table per layer, sensitivity scores, and three assignments.
//
// Table. For every (layer, option) the layer is quantized with the option's linear algorithm
// (quantize_linear(algorithm, {X, W, b, weight spec, act spec})) and scored on the layer's own
// calibration activations X:
//     e_{l,o} = ‖Y − Ŷ‖²_F / ‖Y‖²_F   (relative output error; the absolute ‖Y − Ŷ‖² if Y = 0)
//     b_{l,o} = QuantizedLinear::weight_bits_per_element() — codes + scales/flags + the 16-bit
//               low-rank branch 16·r(m + n)/(m·n), so SVDQuant-type options pay for their branch
//     a_{l,o} = activation bits/element (scales included).
// Evaluations run in parallel over the (layer, option) pairs (OpenMP).
//
// Objective (all assignments): minimise E = Σ_l e_{l,o_l}, the sum of per-layer relative output
// errors — a separable layer-wise proxy; Qua2SeDiMo's end-to-end GNN/FID labels are not modelled.
// Budget: the parameter-weighted average weight bits  B̄ = Σ_l p_l·b_{l,o_l} / Σ_l p_l ≤ budget,
// p_l = n_l·m_l (each layer's weight element count), so B̄ is the model's true weight-storage
// bits per weight element, overheads included.
//
// Assignments:
//  * exact (mp_assign_exact): the multiple-choice knapsack min Σ e s.t. Σ p·b ≤ budget·Σ p,
//    solved by dynamic programming over layers on the exact Pareto frontier of partial
//    (Σ p·b, Σ e) pairs: a partial assignment is kept iff no other one of the same layer prefix
//    has both fewer-or-equal bits and strictly smaller error. Every optimal assignment extends an
//    optimal (hence non-dominated) prefix, so the optimum survives; states that cannot meet the
//    budget even with the cheapest options for the remaining layers are dropped. No
//    discretisation of the real-valued bit costs is needed (a Lagrangian relaxation alone
//    leaves a duality gap; a DP on rounded bits is only exact when costs are multiples of the
//    grid). Worst-case frontier size is exponential; beyond `max_states` states per layer the
//    frontier is thinned to `max_states` bits buckets (min error per bucket), the result stays
//    within budget and is flagged exact = false.
//  * greedy (mp_assign_greedy), the usual baseline: start every layer at its highest-bit option
//    (ties: lower error), then repeatedly apply the single downgrade (any option with fewer bits
//    of any layer) with the smallest error increase per weight bit saved,
//    (e_new − e_cur)/(p_l·(b_cur − b_new)), until the budget holds.
//  * penalty (mp_assign_penalty), Qua2SeDiMo's "top-1 per unit with a bit penalty"
//    (`convert_sdm_unit_to_scheme.py`; their score is −FID − 150·avg_bits): per layer
//    argmin_o e_{l,o} + λ·b_{l,o} (b in bits/element; ties to fewer bits, then the earlier
//    option). No hard budget: the average bits are an outcome of λ.
//
// Sensitivity (mp_sensitivity): per layer, with `low` = the lowest-bit option and `high` = the
// highest-bit option (ties: the lower error), score = e_low − e_high, the relative-error cost of
// dropping the layer from the most to the least precise option; ratio = e_low/e_high is also
// reported but is unstable when the high option is nearly lossless.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quantizers/linear.hpp"

namespace lowbit::quant {

struct MpLayer {
  std::string name;
  MatrixF x;     // calibration activations, tokens × m
  MatrixF w;     // weight, n × m
  VectorF bias;  // size n or empty
};

struct MpOption {
  std::string label;                // e.g. "W4-g64"
  std::string weight_spec;          // make_quantizer spec for W ("int4:g64", "mxfp4", ...)
  std::string act_spec = "none";    // make_quantizer spec for X
  std::string algorithm = "rtn";    // quantize_linear spec ("rtn", "svdquant:rank=32", ...)
};

struct MpEvaluation {
  double rel_error = 0;    // e_{l,o}
  double weight_bits = 0;  // b_{l,o}, low-rank branch included
  double act_bits = 0;     // a_{l,o}
  nlohmann::json info;     // the algorithm's QuantizedLinear::info
};

struct MpTable {
  std::vector<std::string> layers;
  std::vector<MpOption> options;
  std::vector<double> params;                    // p_l = n·m
  std::vector<double> act_width;                 // m_l (activation elements per token)
  std::vector<std::vector<MpEvaluation>> eval;   // [layer][option]
};

// Evaluates every (layer, option); lowbit::Error naming the layer and option on failure.
MpTable evaluate_mixed_precision(std::span<const MpLayer> layers, std::span<const MpOption> options,
                                 uint64_t seed = 0);

// What the assignment solvers see (so they can also run on synthetic tables).
struct MpCosts {
  std::vector<double> params;                // p_l > 0
  std::vector<std::vector<double>> error;    // [layer][option]
  std::vector<std::vector<double>> bits;     // [layer][option], bits per weight element
};
MpCosts mp_costs(const MpTable& t);

struct MpSensitivity {
  int low_option = 0, high_option = 0;
  double low_error = 0, high_error = 0;
  double score = 0;  // low_error − high_error
  double ratio = 0;  // low_error / high_error (+inf if high_error = 0 < low_error; 1 if both 0)
};
std::vector<MpSensitivity> mp_sensitivity(const MpCosts& c);

struct MpAssignment {
  std::string method;          // "exact", "greedy", "penalty", "brute_force"
  std::vector<int> choice;     // option index per layer (empty if infeasible)
  double avg_bits = 0;         // Σ p·b / Σ p
  double total_error = 0;      // Σ e
  bool feasible = false;       // a choice meeting the budget was found (penalty: always true)
  bool exact = true;           // exact: the frontier was never thinned
  nlohmann::json info = nlohmann::json::object();
};

// Σ p·b ≤ budget·Σ p with a relative tolerance of 1e-12 (sums taken in different orders).
bool mp_within_budget(double total_bits, double budget, double total_params);

MpAssignment mp_assign_exact(const MpCosts& c, double budget, size_t max_states = size_t{1} << 20);
MpAssignment mp_assign_greedy(const MpCosts& c, double budget);
MpAssignment mp_assign_penalty(const MpCosts& c, double lambda);
// Enumerates every combination (lowbit::Error beyond 2^24 of them): the test oracle.
MpAssignment mp_assign_brute_force(const MpCosts& c, double budget);

// Average bits and total error of a given choice.
MpAssignment mp_score(const MpCosts& c, std::vector<int> choice, std::string method);

// JSON report: per layer (name, option label, e, b, a, p, sensitivity) and the totals
// (avg weight bits, avg activation bits weighted by m_l, total error).
nlohmann::json mp_report(const MpTable& t, const MpAssignment& a);

}  // namespace lowbit::quant
