#include "CRIProtoC.h"
int cri_protoc_placeholder(void){return 0;}
