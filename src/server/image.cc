// ImageService: PullImage, ListImages, ImageStatus, RemoveImage, ImageFsInfo. Its issue
// implements them here; until then every RPC answers UNIMPLEMENTED naming itself.
#include "server/image_service.h"
