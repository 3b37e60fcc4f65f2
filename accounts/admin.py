from allauth.account.models import EmailAddress
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import PhysicianProfile, SpecialistProfile, User


class SpecialistProfileInline(admin.StackedInline):
    model = SpecialistProfile
    fk_name = "user"
    extra = 0
    readonly_fields = ["approved_at", "approved_by"]


class PhysicianProfileInline(admin.StackedInline):
    model = PhysicianProfile
    extra = 0


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "role", "is_active", "specialist_approved", "last_login"]
    list_filter = ["role", "is_active", "is_staff"]
    search_fields = ["email", "name"]
    inlines = [PhysicianProfileInline, SpecialistProfileInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "role")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "role", "password1", "password2")}),)
    actions = ["approve_specialists"]

    def save_model(self, request, obj, form, change):
        """An account made by an administrator is trusted: its email counts as verified."""
        super().save_model(request, obj, form, change)
        if not change:
            EmailAddress.objects.update_or_create(
                user=obj, email=obj.email, defaults={"verified": True, "primary": True}
            )

    @admin.display(boolean=True, description="Approved specialist")
    def specialist_approved(self, user: User) -> bool | None:
        profile = getattr(user, "specialist_profile", None)
        return profile.is_approved if profile else None

    @admin.action(description="Approve selected specialists")
    def approve_specialists(self, request, queryset):
        approved = 0
        for user in queryset.filter(role="specialist"):
            profile, _ = SpecialistProfile.objects.get_or_create(user=user)
            if not profile.is_approved:
                profile.approve(by=request.user)
                approved += 1
        self.message_user(request, f"Approved {approved} specialist(s).", messages.SUCCESS)


@admin.register(SpecialistProfile)
class SpecialistProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "accepting_consults", "time_zone", "approved_at"]
    list_filter = ["accepting_consults"]
    search_fields = ["user__email", "user__name"]
    raw_id_fields = ["user"]
    readonly_fields = ["approved_at", "approved_by"]


@admin.register(PhysicianProfile)
class PhysicianProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "institution", "jurisdiction"]
    search_fields = ["user__email", "institution"]
