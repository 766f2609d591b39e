#pragma once
// Fixture of the layer check's own test (tests/CMakeLists.txt, layer_check_detects): deploy
// including the engine is what cmake/CheckLayers.cmake must refuse. Never compiled.
#include "reid/engine/trainer.h"
