/* placeholder */ int cri_protoc_placeholder(void);
