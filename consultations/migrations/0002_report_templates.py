from django.db import migrations

TEMPLATES = [
    {
        "name": "CT head",
        "specialty": "neuroradiology",
        "modality": "CT",
        "findings": (
            "Brain parenchyma: \n"
            "Grey-white matter differentiation: \n"
            "Ventricles and sulci: \n"
            "Extra-axial spaces: no collection.\n"
            "Haemorrhage: none.\n"
            "Midline shift: none.\n"
            "Skull and scalp: \n"
            "Visualised sinuses and mastoids: "
        ),
        "impression": "",
        "recommendations": "",
    },
    {
        "name": "Chest radiograph",
        "specialty": "chest",
        "modality": "CR",
        "findings": (
            "Projection: PA / AP.\n"
            "Lines and tubes: none.\n"
            "Lungs: \n"
            "Pleura: no effusion, no pneumothorax.\n"
            "Heart and mediastinum: \n"
            "Bones and soft tissues: "
        ),
        "impression": "",
        "recommendations": "",
    },
    {
        "name": "MRI knee",
        "specialty": "musculoskeletal",
        "modality": "MR",
        "findings": (
            "Menisci: medial \u2014 ; lateral \u2014 .\n"
            "Cruciate ligaments: ACL \u2014 ; PCL \u2014 .\n"
            "Collateral ligaments: MCL \u2014 ; LCL \u2014 .\n"
            "Extensor mechanism: \n"
            "Cartilage: \n"
            "Bone marrow: \n"
            "Joint fluid and synovium: "
        ),
        "impression": "",
        "recommendations": "",
    },
    {
        "name": "Skin photo",
        "specialty": "dermatology",
        "modality": "XC",
        "findings": (
            "Site: \n"
            "Size: \n"
            "Morphology: \n"
            "Colour and pigment network: \n"
            "Border: \n"
            "Dermoscopic features: "
        ),
        "impression": "",
        "recommendations": "",
    },
]


def seed(apps, schema_editor):
    ReportTemplate = apps.get_model("consultations", "ReportTemplate")
    for template in TEMPLATES:
        ReportTemplate.objects.update_or_create(name=template["name"], defaults=template)


def unseed(apps, schema_editor):
    ReportTemplate = apps.get_model("consultations", "ReportTemplate")
    ReportTemplate.objects.filter(name__in=[t["name"] for t in TEMPLATES]).delete()


class Migration(migrations.Migration):
    dependencies = [("consultations", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
