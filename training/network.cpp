#include "training/network.hpp"

namespace xbar::training {

std::unique_ptr<Layer> DigitalLayerFactory::linear(int in_features, int out_features, core::RandomStream& rng,
                                                   Init init, const std::string& /*name*/) const {
  return std::make_unique<Linear>(in_features, out_features, rng, init);
}

std::unique_ptr<Layer> DigitalLayerFactory::conv2d(const Conv2dShape& shape, core::RandomStream& rng, Init init,
                                                   const std::string& /*name*/) const {
  return std::make_unique<Conv2d>(shape, rng, init);
}

}  // namespace xbar::training
