#version 330 core
in vec3 frag_position;
in vec3 frag_normal;
uniform vec3 cam_pos;
out vec4 frag_color;
void main()
{
    vec3 n = normalize(frag_normal);
    if (dot(n, cam_pos - frag_position) < 0.0) n = -n;  // the side that faces the camera
    frag_color = vec4(n * 0.5 + 0.5, 1.0);
}
