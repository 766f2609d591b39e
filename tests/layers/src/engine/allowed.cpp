// Fixture of the layer check's own test: the engine may include deploy. Never compiled.
#include "reid/deploy/extract.h"
#include "reid/engine/trainer.h"
