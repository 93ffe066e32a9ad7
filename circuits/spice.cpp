#include "circuits/spice.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace xbar::circuits {
namespace {

// A two-terminal resistance, or a 0 V source named Vshort_<name> when it is a short (the prefix
// keeps it apart from the Vsense_j output sources).
void element(std::ostream& out, const std::string& name, const std::string& a, const std::string& b, double r) {
  if (r == 0)
    fmt::print(out, "Vshort_{} {} {} DC 0\n", name, a, b);
  else
    fmt::print(out, "R{} {} {} {:.17g}\n", name, a, b, r);
}

}  // namespace

void write_spice_netlist(std::ostream& out, const SpiceCircuit& c) {
  fmt::print(out, "* {}\n", c.title);
  fmt::print(out, "* xbar canonical crossbar: {} rows x {} columns, r_wl_segment={:g} r_bl_segment={:g} "
                  "r_source={:g} r_sense={:g} r_access={:g} ohm\n",
             c.rows, c.cols, c.wires.r_wl_segment, c.wires.r_bl_segment, c.wires.r_source, c.wires.r_sense,
             c.r_access);
  for (int i = 0; i < c.rows; ++i) {
    fmt::print(out, "Vin_{} s_{} 0 DC {:.17g}\n", i, i, c.v_in[i]);
    element(out, fmt::format("src_{}", i), fmt::format("s_{}", i), fmt::format("w_{}_0", i), c.wires.r_source);
    for (int j = 0; j + 1 < c.cols; ++j)
      element(out, fmt::format("wl_{}_{}", i, j), fmt::format("w_{}_{}", i, j), fmt::format("w_{}_{}", i, j + 1),
              c.wires.r_wl_segment);
  }
  for (int i = 0; i < c.rows; ++i)
    for (int j = 0; j < c.cols; ++j) {
      const double g = c.g_device(i, j);
      if (g <= 0) continue;  // an open cell
      const std::string w = fmt::format("w_{}_{}", i, j), b = fmt::format("b_{}_{}", i, j);
      // The memory device: a resistor, or a behavioural current source of its nonlinear I-V.
      auto device = [&](const std::string& to) {
        if (c.iv)
          fmt::print(out, "Bcell_{}_{} {} {} I={}\n", i, j, w, to, c.iv->spice_current(g, fmt::format("V({},{})", w, to)));
        else
          fmt::print(out, "Rcell_{}_{} {} {} {:.17g}\n", i, j, w, to, 1.0 / g);
      };
      if (c.r_access > 0) {
        const std::string m = fmt::format("m_{}_{}", i, j);
        device(m);
        fmt::print(out, "Racc_{}_{} {} {} {:.17g}\n", i, j, m, b, c.r_access);
      } else {
        device(b);
      }
    }
  for (int j = 0; j < c.cols; ++j) {
    for (int i = 0; i + 1 < c.rows; ++i)
      element(out, fmt::format("bl_{}_{}", i, j), fmt::format("b_{}_{}", i, j), fmt::format("b_{}_{}", i + 1, j),
              c.wires.r_bl_segment);
    element(out, fmt::format("sense_{}", j), fmt::format("b_{}_{}", c.rows - 1, j), fmt::format("g_{}", j),
            c.wires.r_sense);
    fmt::print(out, "Vsense_{} g_{} 0 DC 0\n", j, j);
  }
  // Tight Newton tolerances: the defaults (reltol 1e-3) would stop a nonlinear solve long before
  // the 1e-6 agreement the cross-checks ask for; a linear circuit is solved exactly either way.
  if (c.iv) fmt::print(out, ".options reltol=1e-12 abstol=1e-18 vntol=1e-15 itl1=500\n");
  fmt::print(out, ".control\nset numdgt=15\nop\n");
  for (int j = 0; j < c.cols; ++j) fmt::print(out, "print i(vsense_{})\n", j);
  // Without `quit`, ngspice -b goes on to look for analyses outside the control block, finds none
  // and exits with status 1 even though the operating point ran.
  fmt::print(out, "quit\n.endc\n.end\n");
}

}  // namespace xbar::circuits
