#pragma once
/// @file
/// Umbrella header: everything a user experiment needs.

#include "reid/config/config.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/registry.h"
#include "reid/core/runtime.h"
#include "reid/core/version.h"
